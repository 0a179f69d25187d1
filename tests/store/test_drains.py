"""Drain requests: one open per host, durable on return, closed once, progress and blockers kept."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from balancer.errors import Conflict, NotFound
from balancer.reasons import Reason
from balancer.store import Blocker, DrainProgress, DrainState, Store
from tests.leader import fence_of


def test_a_second_request_for_the_same_host_returns_the_open_drain(store: Store) -> None:
    first, created = store.create_drain("n1", "alice", now=10.0, deadline=3600.0, note="kernel update")
    again, created_again = store.create_drain("n1", "bob", now=20.0)
    other, created_other = store.create_drain("n2", "bob", now=30.0)

    assert (created, created_again, created_other) == (True, False, True)
    assert again == first
    assert first.host == "n1" and first.state == DrainState.OPEN and first.requested_by == "alice"
    assert (first.created_at, first.deadline, first.note, first.progress) == (
        10.0,
        3600.0,
        "kernel update",
        None,
    )
    assert other.id != first.id
    assert [d.host for d in store.drains(state=DrainState.OPEN)] == ["n2", "n1"]


def test_a_drain_is_durable_when_create_returns(store: Store, store_url: str) -> None:
    drain, _ = store.create_drain("n1", "alice", now=10.0)
    with Store.open(store_url) as other:  # a second process, while the first is still open
        assert other.get_drain(drain.id) == drain
    store.close()
    with Store.open(store_url) as reopened:
        assert reopened.drains() == (drain,)


def _race(a: Store, b: Store, host: str, now: float) -> dict[str, tuple[int, bool]]:
    start = threading.Barrier(2)
    results: dict[str, tuple[int, bool]] = {}

    def ask(s: Store, who: str) -> None:
        start.wait()
        drain, created = s.create_drain(host, who, now=now)
        results[who] = (drain.id, created)

    threads = [threading.Thread(target=ask, args=(s, who)) for s, who in ((a, "alice"), (b, "bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_for_one_host_make_exactly_one_drain(open_store: Callable[[], Store]) -> None:
    a, b = open_store(), open_store()
    for i in range(20):
        results = _race(a, b, f"h{i}", now=float(i))
        assert results["alice"][0] == results["bob"][0], i
        assert sorted(c for _, c in results.values()) == [False, True], i
    assert len(a.drains()) == 20


def test_closing_frees_the_host_for_a_new_drain(store: Store) -> None:
    first, _ = store.create_drain("n1", "alice", now=10.0)
    done = store.finish_drain(first.id, 50.0, fence=fence_of(store))
    assert (done.state, done.closed_at, done.closed_by, done.updated_at) == (
        DrainState.DONE,
        50.0,
        "balancer",
        50.0,
    )

    second, created = store.create_drain("n1", "alice", now=60.0)
    assert created and second.id != first.id
    assert store.drains(host="n1", state=DrainState.DONE) == (done,)
    assert [d.id for d in store.drains(host="n1")] == [second.id, first.id]
    assert len(store.drains(limit=1)) == 1


def test_cancelling_twice_is_a_no_op_but_reclosing_differently_conflicts(store: Store) -> None:
    drain, _ = store.create_drain("n1", "alice", now=10.0)
    cancelled = store.close_drain(drain.id, DrainState.CANCELLED, "bob", now=20.0)
    assert store.close_drain(drain.id, DrainState.CANCELLED, "carol", now=30.0) == cancelled
    with pytest.raises(Conflict, match="already cancelled"):
        store.finish_drain(drain.id, 40.0, fence=fence_of(store))
    with pytest.raises(ValueError):
        store.close_drain(drain.id, DrainState.OPEN, "bob", now=40.0)


def test_unknown_drain_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="drain 404"):
        store.get_drain(404)
    with pytest.raises(NotFound):
        store.close_drain(404, DrainState.CANCELLED, "bob", now=1.0)
    with pytest.raises(NotFound):
        store.update_drain_progress(
            404, DrainProgress(vms_remaining=0, bytes_remaining=0), now=1.0, fence=fence_of(store)
        )


def test_progress_and_blockers_are_listed_with_the_drain(store: Store) -> None:
    drain, _ = store.create_drain("n1", "alice", now=10.0)
    stuck = DrainProgress(
        vms_remaining=2,
        bytes_remaining=5 << 30,
        done=3,
        failed=1,
        blockers=(
            Blocker("vm7", Reason.PINNED, "pinned to n1"),
            Blocker("vm8", Reason.NO_FIT, "needs 64 GiB; the largest free is 48 GiB"),
        ),
    )
    updated = store.update_drain_progress(drain.id, stuck, now=20.0, fence=fence_of(store))
    assert updated.progress == stuck and updated.updated_at == 20.0
    assert updated.blocked
    assert store.drains(state=DrainState.OPEN)[0].progress == stuck

    moving = DrainProgress(vms_remaining=2, bytes_remaining=1 << 30, in_flight=("vm7",), eta_seconds=42.5)
    assert not store.update_drain_progress(drain.id, moving, now=30.0, fence=fence_of(store)).blocked
    assert store.get_drain(drain.id).progress == moving


def test_progress_of_a_closed_drain_conflicts_but_the_final_one_is_kept(store: Store) -> None:
    drain, _ = store.create_drain("n1", "alice", now=10.0)
    final = DrainProgress(vms_remaining=0, bytes_remaining=0, done=5)
    closed = store.finish_drain(drain.id, 20.0, progress=final, fence=fence_of(store))
    assert closed.progress == final and not closed.blocked
    with pytest.raises(Conflict, match="done"):
        store.update_drain_progress(drain.id, final, now=30.0, fence=fence_of(store))


def test_every_request_is_audited_with_who_asked(store: Store) -> None:
    drain, _ = store.create_drain("n1", "alice", now=10.0, note="disk swap")
    store.create_drain("n1", "bob", now=20.0)
    store.close_drain(drain.id, DrainState.CANCELLED, "carol", now=30.0)

    log = store.audit_log(subject=f"drain/{drain.id}")
    assert [(e.actor, e.action, e.at) for e in log] == [
        ("carol", "drain.cancel", 30.0),
        ("bob", "drain.create", 20.0),
        ("alice", "drain.create", 10.0),
    ]
    assert log[2].detail == {"host": "n1", "deadline": None, "note": "disk swap", "existing": False}
    assert log[1].detail["existing"] is True
