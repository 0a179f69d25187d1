"""Stored plans: the Plan value round-trips; operators approve or reject a plan or one move."""

from __future__ import annotations

import pytest

from balancer.errors import Conflict, NotFound
from balancer.model import Plan
from balancer.reasons import Reason
from balancer.store import MoveStatus, PlanStatus, Store
from tests.leader import fence_of

from .builders import move, plan


def test_a_saved_plan_round_trips_with_one_row_per_move(store: Store) -> None:
    value = plan(move("vm1"), move("vm2", source="n1", target="n3", reason=Reason.DRAIN))
    row = store.save_plan(value, "recommend", now=101.0, fence=fence_of(store))

    assert store.get_plan(row.id) == row
    assert row.plan == value
    assert (row.status, row.automation, row.created_at, row.updated_at) == (
        PlanStatus.PROPOSED,
        "recommend",
        100.0,
        101.0,
    )
    assert [(m.index, m.vm, m.source, m.target, m.reason, m.bytes, m.status) for m in row.moves] == [
        (0, "vm1", "n1", "n2", Reason.BALANCE, value.moves[0].cost.total_bytes, MoveStatus.PROPOSED),
        (1, "vm2", "n1", "n3", Reason.DRAIN, value.moves[1].cost.total_bytes, MoveStatus.PROPOSED),
    ]


def test_a_plan_saved_approved_has_approved_moves(store: Store) -> None:
    row = store.save_plan(plan(), "auto", now=101.0, status=PlanStatus.APPROVED, fence=fence_of(store))
    assert row.status == PlanStatus.APPROVED
    assert {m.status for m in row.moves} == {MoveStatus.APPROVED}


def test_a_plan_without_moves_is_stored_too(store: Store) -> None:
    empty = Plan(created_at=5.0, moves=(), skips=(), imbalance_before=0.0, imbalance_after=0.0)
    row = store.save_plan(empty, "recommend", now=5.0, fence=fence_of(store))
    assert store.get_plan(row.id).plan == empty and row.moves == ()


def test_approving_a_plan_approves_its_undecided_moves(store: Store) -> None:
    row = store.save_plan(
        plan(move("vm1"), move("vm2"), move("vm3")), "recommend", now=101.0, fence=fence_of(store)
    )
    store.reject_move(row.id, 2, "alice", now=102.0)

    approved = store.approve_plan(row.id, "bob", now=103.0)
    assert (approved.status, approved.decided_by, approved.decided_at) == (PlanStatus.APPROVED, "bob", 103.0)
    assert [m.status for m in approved.moves] == [
        MoveStatus.APPROVED,
        MoveStatus.APPROVED,
        MoveStatus.REJECTED,
    ]
    assert store.approve_plan(row.id, "bob", now=104.0).moves == approved.moves  # repeating is a no-op
    assert [(e.actor, e.action, e.subject) for e in store.audit_log()] == [
        ("bob", "plan.approve", f"plan/{row.id}"),
        ("bob", "plan.approve", f"plan/{row.id}"),
        ("alice", "move.reject", f"plan/{row.id}/move/2"),
    ]


def test_rejecting_a_plan_rejects_moves_not_started(store: Store) -> None:
    row = store.save_plan(plan(), "recommend", now=101.0, fence=fence_of(store))
    store.approve_plan(row.id, "alice", now=102.0)
    rejected = store.reject_plan(row.id, "bob", now=103.0)
    assert rejected.status == PlanStatus.REJECTED and rejected.decided_by == "bob"
    assert {m.status for m in rejected.moves} == {MoveStatus.REJECTED}
    assert store.plans(status=PlanStatus.REJECTED) == (rejected,)


def test_approving_one_move_leaves_the_plan_proposed(store: Store) -> None:
    row = store.save_plan(plan(), "recommend", now=101.0, fence=fence_of(store))
    approved = store.approve_move(row.id, 1, "alice", now=102.0)
    assert (approved.index, approved.status, approved.decided_by, approved.decided_at) == (
        1,
        MoveStatus.APPROVED,
        "alice",
        102.0,
    )
    after = store.get_plan(row.id)
    assert after.status == PlanStatus.PROPOSED
    assert [m.status for m in after.moves] == [MoveStatus.PROPOSED, MoveStatus.APPROVED]
    assert store.audit_log(actor="alice")[0].detail == {"vm": "vm2", "from": "proposed", "to": "approved"}


def test_unknown_plans_and_moves_raise_not_found(store: Store) -> None:
    row = store.save_plan(plan(), "recommend", now=101.0, fence=fence_of(store))
    with pytest.raises(NotFound, match="plan 999"):
        store.get_plan(999)
    with pytest.raises(NotFound):
        store.approve_plan(999, "alice", now=1.0)
    with pytest.raises(NotFound):
        store.reject_plan(999, "alice", now=1.0)
    with pytest.raises(NotFound):
        store.approve_move(999, 0, "alice", now=1.0)
    with pytest.raises(NotFound, match=f"plan {row.id} has no move 7"):
        store.approve_move(row.id, 7, "alice", now=1.0)
    with pytest.raises(NotFound):
        store.set_move_status(row.id, 7, MoveStatus.STARTED, fence=fence_of(store))
    assert store.audit_log() == ()


def test_decisions_that_contradict_the_plan_state_conflict(store: Store) -> None:
    rejected = store.save_plan(plan(), "recommend", now=101.0, fence=fence_of(store))
    store.reject_plan(rejected.id, "alice", now=102.0)
    with pytest.raises(Conflict, match="is rejected"):
        store.approve_plan(rejected.id, "bob", now=103.0)
    with pytest.raises(Conflict):
        store.approve_move(rejected.id, 0, "bob", now=103.0)

    running = store.save_plan(plan(), "recommend", now=104.0, fence=fence_of(store))
    store.approve_plan(running.id, "alice", now=105.0)
    store.set_plan_status(running.id, PlanStatus.EXECUTING, now=106.0, fence=fence_of(store))
    store.set_move_status(running.id, 0, MoveStatus.STARTED, migration_id="m-1", fence=fence_of(store))
    with pytest.raises(Conflict, match="is executing"):
        store.reject_plan(running.id, "bob", now=107.0)

    proposed = store.save_plan(plan(), "recommend", now=108.0, fence=fence_of(store))
    store.set_move_status(proposed.id, 0, MoveStatus.SKIPPED, fence=fence_of(store))
    with pytest.raises(Conflict, match="move 0 is skipped"):
        store.approve_move(proposed.id, 0, "bob", now=109.0)


def test_the_executor_records_move_progress(store: Store) -> None:
    row = store.save_plan(plan(), "auto", now=101.0, status=PlanStatus.EXECUTING, fence=fence_of(store))
    started = store.set_move_status(row.id, 0, MoveStatus.STARTED, migration_id="m-1", fence=fence_of(store))
    assert (started.status, started.migration_id) == (MoveStatus.STARTED, "m-1")
    done = store.set_move_status(row.id, 0, MoveStatus.SUCCEEDED, fence=fence_of(store))
    assert (done.status, done.migration_id) == (MoveStatus.SUCCEEDED, "m-1")
    finished = store.set_plan_status(row.id, PlanStatus.DONE, now=200.0, fence=fence_of(store))
    assert (finished.status, finished.updated_at) == (PlanStatus.DONE, 200.0)


def test_stale_proposed_plans_are_superseded_but_decisions_are_kept(store: Store) -> None:
    old = store.save_plan(plan(created_at=1.0), "recommend", now=1.0, fence=fence_of(store))
    approved = store.save_plan(plan(created_at=2.0), "recommend", now=2.0, fence=fence_of(store))
    store.approve_plan(approved.id, "alice", now=2.5)
    older = store.save_plan(plan(created_at=3.0), "recommend", now=3.0, fence=fence_of(store))
    newest = store.save_plan(plan(created_at=4.0), "recommend", now=4.0, fence=fence_of(store))

    assert store.mark_stale_plans_superseded(now=5.0, fence=fence_of(store)) == (old.id, older.id)
    assert [p.status for p in store.plans()] == [
        PlanStatus.PROPOSED,
        PlanStatus.SUPERSEDED,
        PlanStatus.APPROVED,
        PlanStatus.SUPERSEDED,
    ]
    assert store.get_plan(old.id).updated_at == 5.0
    assert store.mark_stale_plans_superseded(now=6.0, fence=fence_of(store)) == ()
    assert store.mark_stale_plans_superseded(now=7.0, keep=approved.id, fence=fence_of(store)) == (newest.id,)
    assert [p.id for p in store.plans(limit=2)] == [newest.id, older.id]


def test_superseding_with_no_plans_is_a_no_op(store: Store) -> None:
    assert store.mark_stale_plans_superseded(now=1.0, fence=fence_of(store)) == ()
