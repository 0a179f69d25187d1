"""The store as the arbiter of one authority: compare-and-set journal writes owned by a term, adoption by
a newer term, an undrain that withdraws its drain's moves in its own transaction, proposals that expire,
and a CLI that never creates a store of its own (SQLite and a real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from balancer.errors import Conflict, LeaseLost, RecordChanged, StoreError
from balancer.model import MoveState
from balancer.reasons import Reason
from balancer.store import Store
from balancer.store.records import DrainState, Fence, MoveStatus, PlanStatus
from tests.leader import fence_of, lead
from tests.store.builders import move, plan, record

S = MoveState


def test_a_transition_lands_only_from_the_state_it_expects(store: Store) -> None:
    journal = store.journal(fence_of(store))
    rec = journal.create_record(record("m1"))
    running = replace(rec, state=S.PRECHECKING)
    journal.update_record(running, S.QUEUED)
    with pytest.raises(RecordChanged, match="expected queued") as caught:
        journal.update_record(replace(rec, state=S.FAILED), S.QUEUED)  # someone else moved it meanwhile
    assert caught.value.current == store.get_record("m1")
    assert store.get_record("m1").state == S.PRECHECKING


def test_a_final_record_is_never_rewritten(store: Store) -> None:
    journal = store.journal(fence_of(store))
    rec = journal.create_record(record("m1"))
    done = replace(rec, state=S.SUCCEEDED, outcome=Reason.SUCCEEDED)
    journal.update_record(done, S.QUEUED)
    for again in (S.SUCCEEDED, S.QUEUED, S.MIGRATING):
        with pytest.raises(RecordChanged):
            journal.update_record(replace(done, state=S.FAILED, detail="rewritten"), again)
    assert store.get_record("m1") == done
    # needs_attention ends the executor's work but a leader may settle it later
    odd = journal.create_record(record("m2", vm="vm2", state=S.NEEDS_ATTENTION))
    journal.update_record(replace(odd, state=S.FAILED, outcome=Reason.RECOVERED), S.NEEDS_ATTENTION)
    assert store.get_record("m2").state == S.FAILED


def test_a_newer_term_adopts_a_record_and_the_older_one_can_no_longer_touch_it(
    open_store: Callable[[], Store],
) -> None:
    a, b = open_store(), open_store()
    old = lead(a, "old", ttl=0.5)
    rec = a.journal(old).create_record(record("m1", state=S.MIGRATING))
    new = lead(b, "new")  # once the old lease has expired
    assert new.epoch > old.epoch
    adopted = b.journal(new).adopt_record(b.get_record("m1"))
    assert adopted.epoch == new.epoch and b.get_record("m1").epoch == new.epoch
    with pytest.raises(LeaseLost):  # the old term is fenced off
        a.journal(old).update_record(replace(rec, state=S.VERIFYING), S.MIGRATING)
    b.journal(new).update_record(replace(adopted, state=S.SUCCEEDED), S.MIGRATING)
    assert b.get_record("m1").state == S.SUCCEEDED


def test_a_record_must_carry_the_writers_epoch(store: Store) -> None:
    fence = fence_of(store)
    with pytest.raises(ValueError, match="epoch"):
        store.create_record(record("m1", epoch=fence.epoch + 1), fence=fence)


def test_an_undrain_withdraws_its_queued_moves_and_a_late_queue_is_refused(store: Store) -> None:
    fence = fence_of(store)
    journal = store.journal(fence)
    drain, _ = store.create_drain("n1", "ops", 10.0)
    queued = journal.create_record(record("q1", source="n1", drain_id=drain.id), drain_open=drain.id)
    started = journal.create_record(record("s1", vm="vm2", source="n1", drain_id=drain.id), drain.id)
    journal.update_record(replace(started, state=S.PRECHECKING, started_at=11.0), S.QUEUED)
    row = store.save_plan(
        plan(move("vm3", source="n1", reason=Reason.DRAIN)), "recommend", 11.0, fence=fence,
        status=PlanStatus.APPROVED,
    )  # fmt: skip
    store.close_drain(drain.id, DrainState.CANCELLED, "bob", 12.0)
    gone = store.get_record("q1")
    assert (gone.state, gone.outcome, gone.started_at) == (S.ABORTED, Reason.DRAIN_CANCELLED, None)
    assert "cancelled by bob" in gone.detail
    assert store.get_record("s1").state == S.PRECHECKING  # already running: it finishes normally
    with pytest.raises(RecordChanged):  # the leader's admission of the withdrawn move fails
        journal.update_record(replace(queued, state=S.PRECHECKING), S.QUEUED)
    with pytest.raises(Conflict, match="is cancelled; not queueing"):
        journal.create_record(record("late", vm="vm4", source="n1", drain_id=drain.id), drain_open=drain.id)
    assert store.get_plan(row.id).moves[0].status == MoveStatus.WITHDRAWN
    assert {r.id for r in store.records()} == {"q1", "s1"}


def test_a_proposal_expires_and_cannot_be_approved_afterwards(store: Store) -> None:
    fence = fence_of(store)
    row = store.save_plan(plan(), "recommend", 100.0, fence=fence, expires_at=130.0)
    store.refresh_proposal(row.id, 120.0, 150.0, fence=fence)  # proposed again: approvable for longer
    assert store.get_plan(row.id).expires_at == 150.0
    with pytest.raises(Conflict, match=f"plan {row.id} expired"):
        store.approve_plan(row.id, "alice", 151.0)
    with pytest.raises(Conflict, match="expired"):
        store.approve_move(row.id, 0, "alice", 151.0)
    assert store.expire_proposals(151.0, fence=fence) == (row.id,)
    assert store.get_plan(row.id).status == PlanStatus.EXPIRED
    assert store.approve_plan  # an approval before the expiry stands:
    other = store.save_plan(plan(), "recommend", 200.0, fence=fence, expires_at=230.0)
    assert store.approve_move(other.id, 0, "alice", 210.0).status == MoveStatus.APPROVED
    assert [p.id for p in store.plans_with_approved_moves()] == [other.id]


def test_an_outcome_follows_the_plan_move_that_started_it(store: Store) -> None:
    fence = fence_of(store)
    row = store.save_plan(plan(), "auto", 1.0, fence=fence, status=PlanStatus.APPROVED)
    store.set_move_status(row.id, 0, MoveStatus.STARTED, fence=fence, migration_id="m1")
    assert store.follow_outcome("m1", MoveStatus.SUCCEEDED, fence=fence) == 1
    assert store.follow_outcome("m1", MoveStatus.FAILED, fence=fence) == 0  # only from started
    assert store.get_plan(row.id).moves[0].status == MoveStatus.SUCCEEDED


def test_opening_without_create_needs_an_existing_store_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state" / "b.db"
    with pytest.raises(StoreError, match=f"no store at {path}"):
        Store.open(f"sqlite:///{path}", create=False)
    assert not path.exists() and not path.parent.exists()
    path.parent.mkdir()
    path.write_bytes(b"")  # a file that is not a balancer store
    with pytest.raises(StoreError, match="no balancer schema"):
        Store.open(f"sqlite:///{path}", create=False)
    assert path.read_bytes() == b""
    Store.open(f"sqlite:///{path}").close()  # the service creates and migrates it
    with Store.open(f"sqlite:///{path}", create=False) as s:
        assert s.schema_version() == s.latest_schema_version


def test_the_store_clock_needs_no_round_trip_and_never_goes_back(store: Store) -> None:
    readings = [store.now() for _ in range(1000)]
    assert readings == sorted(readings)
    if store.dialect == "postgresql":
        assert store.acquire_lease("probe", 5.0) is not None  # re-measures against the server's clock
        assert abs(store.now() - readings[-1]) < 5


def test_a_fence_for_another_lease_name_does_not_count(store: Store) -> None:
    grant = store.acquire_lease("a", 30.0, name="other")
    assert grant is not None
    with pytest.raises(LeaseLost):
        store.save_plan(plan(), "auto", 1.0, fence=Fence("a", grant.epoch))
