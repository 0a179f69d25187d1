"""Drain progress from the snapshot, the plan and the journal (service/drains.py), and the leader's
bookkeeping of open drains on a real store: progress stored, a drain closed once its host is empty,
blockers logged once per change, the gauges."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from balancer.metrics.export import Metrics
from balancer.model import MoveState, Plan, Skip
from balancer.reasons import Reason
from balancer.service.drains import DrainBook, progress
from balancer.store import Store
from balancer.store.records import DrainState
from tests.builders import GIB, NOW, host, snapshot, vm
from tests.leader import fence_of
from tests.store.builders import move, record

BANDWIDTH = 100 * 2**20  # bytes/s out of one draining host


def cluster(*on_h1: str):  # type: ignore[no-untyped-def]
    """h1 holds ``on_h1`` (4 GiB RAM + 5 GiB of disk each), h2 holds app."""
    return snapshot(hosts=[host("h1"), host("h2")], vms=[*(vm(n, "h1") for n in on_h1), vm("app", "h2")])


def plan_of(moves: tuple[str, ...] = (), skips: tuple[tuple[str, Reason, str], ...] = ()) -> Plan:
    return Plan(
        created_at=NOW,
        moves=tuple(move(n, "h1", "h2", reason=Reason.DRAIN) for n in moves),
        skips=tuple(Skip("vm", n, r, d) for n, r, d in skips),
        imbalance_before=0.0,
        imbalance_after=0.0,
    )


def test_remaining_bytes_are_disks_and_ram_and_the_eta_follows_the_bandwidth() -> None:
    p = progress(
        "h1", cluster("a", "b"), plan_of(("a", "b")), [], since=NOW - 10, bandwidth_bytes_s=BANDWIDTH
    )
    assert (p.vms_remaining, p.bytes_remaining) == (2, 2 * (4 + 5) * GIB)
    assert p.eta_seconds == pytest.approx(2 * 9 * GIB / BANDWIDTH)
    assert (p.in_flight, p.done, p.failed, p.blockers) == ((), 0, 0, ())


def test_records_since_the_request_count_as_done_failed_or_in_flight() -> None:
    records = [
        record(
            "old", vm="x", source="h1", state=MoveState.SUCCEEDED, created_at=NOW - 100
        ),  # before: ignored
        record("ok", vm="y", source="h1", state=MoveState.SUCCEEDED, created_at=NOW),
        record("bad", vm="z", source="h1", state=MoveState.FAILED, created_at=NOW),
        record("att", vm="w", source="h1", state=MoveState.NEEDS_ATTENTION, created_at=NOW),
        record("run", vm="a", source="h1", state=MoveState.MIGRATING, created_at=NOW),
        record("other", vm="app", source="h2", state=MoveState.MIGRATING, created_at=NOW),  # another host
    ]
    p = progress("h1", cluster("a"), plan_of(), records, since=NOW - 10, bandwidth_bytes_s=BANDWIDTH)
    assert (p.done, p.failed, p.in_flight) == (1, 2, ("a",))


def test_a_vm_nothing_moves_is_a_blocker_with_the_planners_reason() -> None:
    plan = plan_of(("a",), (("db", Reason.NO_MEMORY, "no host with 64 GiB free"), ("app", Reason.PINNED, "")))
    p = progress("h1", cluster("a", "db"), plan, [], since=NOW, bandwidth_bytes_s=BANDWIDTH)
    assert [(b.vm, b.reason, b.detail) for b in p.blockers] == [
        ("db", Reason.NO_MEMORY, "no host with 64 GiB free")
    ]
    assert p.eta_seconds is not None  # a still moves


def test_no_honest_eta_when_nothing_can_move_or_nothing_may_be_copied() -> None:
    stuck = plan_of((), (("db", Reason.NO_MEMORY, "no host with 64 GiB free"),))
    assert (
        progress("h1", cluster("db"), stuck, [], since=NOW, bandwidth_bytes_s=BANDWIDTH).eta_seconds is None
    )
    assert progress("h1", cluster("a"), plan_of(("a",)), [], NOW, bandwidth_bytes_s=0).eta_seconds is None
    assert progress("h1", cluster(), None, [], NOW, bandwidth_bytes_s=0).eta_seconds == 0.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path}/b.db") as s:
        yield s


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_the_book_stores_progress_of_an_open_drain_and_closes_it_once_the_host_is_empty(
    store: Store, metrics: Metrics
) -> None:
    book = DrainBook(store, metrics)
    d, _ = store.create_drain("h1", "ops", NOW)
    fence = fence_of(store)
    book.update({"h1": d}, set(), cluster("a"), plan_of(("a",)), NOW + 1, fence, BANDWIDTH)
    stored = store.drains(state=DrainState.OPEN)[0]
    assert stored.progress is not None and stored.progress.vms_remaining == 1
    assert metrics.state.state.drains["h1"].vms_remaining == 1

    book.update({"h1": d}, set(), cluster(), None, NOW + 2, fence, BANDWIDTH)  # a has left h1
    (done,) = store.drains()
    assert (done.state, done.closed_at) == (DrainState.DONE, NOW + 2)
    assert metrics.state.state.drains["h1"].vms_remaining == 0


def test_a_host_a_finished_drain_holds_reads_zero_and_a_gone_drain_disappears(
    store: Store, metrics: Metrics
) -> None:
    book = DrainBook(store, metrics)
    book.update({}, {"h3"}, cluster(), None, NOW, fence_of(store), BANDWIDTH)
    gauge = metrics.state.state.drains["h3"]
    assert (gauge.vms_remaining, gauge.bytes_remaining, gauge.blocked_vms) == (0, 0, 0)
    book.update({}, set(), cluster(), None, NOW + 1, fence_of(store), BANDWIDTH)
    assert metrics.state.state.drains == {}


def test_blockers_are_logged_once_until_they_change(
    store: Store, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    book = DrainBook(store, metrics)
    d, _ = store.create_drain("h1", "ops", NOW, deadline=NOW + 3600)
    stuck = plan_of((), (("db", Reason.NO_MEMORY, "no host with 64 GiB free"),))
    caplog.set_level(logging.WARNING, logger="balancer.service")
    for i in range(3):
        book.update({"h1": d}, set(), cluster("db"), stuck, NOW + i, fence_of(store), BANDWIDTH)
    blocked = [r.getMessage() for r in caplog.records if "event=drain_blocked" in r.getMessage()]
    assert blocked == ["event=drain_blocked host=h1 vm=db reason=no_memory detail='no host with 64 GiB free'"]
    gauge = metrics.state.state.drains["h1"]
    assert (gauge.blocked_vms, gauge.eta_seconds, gauge.deadline) == (1, None, NOW + 3600)

    pinned = plan_of((), (("db", Reason.PINNED, "pinned to h1"),))
    book.update({"h1": d}, set(), cluster("db"), pinned, NOW + 5, fence_of(store), BANDWIDTH)
    blocked = [r.getMessage() for r in caplog.records if "event=drain_blocked" in r.getMessage()]
    assert len(blocked) == 2 and "reason=pinned" in blocked[-1]
