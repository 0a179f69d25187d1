"""Runner over the simulated cluster and a real SQLite store: journal, limits, abort, shutdown."""

from __future__ import annotations

from dataclasses import replace

import pytest

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import Event, Finished, OutcomeStatus, StateChanged, Waiting
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.runner import Runner, VmBusy
from balancer.model import Move, MoveCost, MoveState
from balancer.reasons import Reason
from balancer.sim.hypervisor import SimHosts
from balancer.store import Store
from tests.leader import journal_of
from tests.waiting import wait_for

BASE = "/var/lib/libvirt/base/base.raw"
FAST = ExecutorArgs(poll_seconds=0.05, settle_seconds=1.0, memory_headroom_mib=0)


def move(vm: str, src: str, dst: str, reason: Reason = Reason.BALANCE) -> Move:
    return Move(vm, src, dst, reason, MoveCost(0, 0, 0, 0.0))


def runner(
    sim: SimHosts,
    eps: dict[str, MigrationEndpoint],
    store: Store,
    limits: LimitArgs | None = None,
    args: ExecutorArgs = FAST,
    events: list[Event] | None = None,
) -> Runner:
    sink = events.append if events is not None else (lambda _e: None)
    return Runner(args, limits or LimitArgs(), sim.hypervisor, journal_of(store), eps, sink)


def test_success_journals_every_state_and_cleans_the_source(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h1")
    events: list[Event] = []
    r = runner(sim, sim_endpoints, store, events=events)
    rec = r.submit([move("a", "h1", "h2")])[0]
    (out,) = r.wait([rec.id], timeout=10)
    assert out.status == OutcomeStatus.SUCCEEDED, out.detail
    assert sim.where("a") == [("h2", "running")]
    states = [e.record.state for e in events if isinstance(e, StateChanged)]
    assert states == [
        MoveState.QUEUED,
        MoveState.PRECHECKING,
        MoveState.COPYING_BACKING,
        MoveState.MIGRATING,
        MoveState.VERIFYING,
        MoveState.SUCCEEDED,
    ]
    saved = store.get_record(rec.id)
    assert saved.state == MoveState.SUCCEEDED and saved.outcome == Reason.SUCCEEDED
    assert saved.copy_mode == "incremental"  # the base is on h2 already: reused
    assert "/var/lib/libvirt/images/a.qcow2" not in sim.hosts["h1"].volumes  # source overlay removed
    assert "/var/lib/libvirt/base/base.raw" in sim.hosts["h1"].volumes  # never a backing file
    assert "/var/lib/libvirt/images/a.qcow2" in sim.hosts["h2"].volumes
    assert any(isinstance(e, Finished) for e in events)


def test_backing_copied_with_streams_when_missing(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h1")
    del sim.hosts["h3"].volumes["/var/lib/libvirt/base/base.raw"]
    r = runner(sim, sim_endpoints, store)
    (out,) = r.wait([r.submit([move("a", "h1", "h3")])[0].id], timeout=10)
    assert out.ok, out.detail
    assert out.record.backing_bytes == 4 << 20
    assert sim.digest("h3", BASE) == sim.digest("h1", BASE)
    assert (
        sim.hypervisor("h3").volume("/var/lib/libvirt/images/a.qcow2").backing.path
        == "/var/lib/libvirt/base/base.raw"
    )


def test_a_different_backing_file_on_the_target_is_never_used(sim, sim_endpoints, store) -> None:
    # Same path and size, other content: an incremental copy onto it would read the wrong base data,
    # so the executor copies the whole disk into a flat image instead.
    sim.add_vm("a", "h1")
    sim.hosts["h3"].volumes[BASE].data = b"X" * (4 << 20)
    r = runner(sim, sim_endpoints, store)
    (out,) = r.wait([r.submit([move("a", "h1", "h3")])[0].id], timeout=10)
    assert out.ok, out.detail
    assert f"target's {BASE} differs" in out.detail and out.record.copy_mode == "full"
    assert sim.hosts["h3"].volumes["/var/lib/libvirt/images/a.qcow2"].facts.backing is None
    assert sim.hosts["h3"].volumes[BASE].data == b"X" * (4 << 20)  # theirs, left alone


def test_a_verified_backing_file_is_not_read_again_for_the_next_move(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h1")
    sim.add_vm("b", "h1")
    r = runner(sim, sim_endpoints, store)
    outs = r.wait([x.id for x in r.submit([move("a", "h1", "h3"), move("b", "h1", "h3")])], timeout=20)
    assert all(o.ok for o in outs), [o.detail for o in outs]
    assert all(f"reused {BASE} on h3" in o.detail for o in outs)
    assert sim.reads[("h1", BASE)] == 1 and sim.reads[("h3", BASE)] == 1  # proven equal once


def test_failed_migration_removes_what_it_created_on_the_target(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h1")
    del sim.hosts["h3"].volumes["/var/lib/libvirt/base/base.raw"]
    sim.faults.fail_with = "operation failed: job 'migration out' unexpectedly failed"
    r = runner(sim, sim_endpoints, store)
    (out,) = r.wait([r.submit([move("a", "h1", "h3")])[0].id], timeout=10)
    assert out.status == OutcomeStatus.FAILED
    assert out.reason == Reason.MIGRATION_FAILED
    assert out.record.error_code == 9 and "unexpectedly failed" in (out.record.error_message or "")
    assert sim.where("a") == [("h1", "running")]
    assert sim.hosts["h3"].volumes.keys() == set()  # overlay and the copied base both gone
    made = ("/var/lib/libvirt/base/base.raw", "/var/lib/libvirt/images/a.qcow2")
    assert out.record.created_volumes == made  # listed before they were created, base first
    assert set(out.record.removed_volumes) == set(made)
    assert store.target_volumes() == ()  # the ledger lists nothing of the move any more


def test_precheck_skip_and_fail_are_distinct(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h2")
    sim.add_vm("b", "h1", memory_mib=64)
    sim.add_vm("c", "h1")
    sim.hosts["h3"].free_memory = 32 << 20
    r = runner(sim, sim_endpoints, store)
    recs = r.submit([move("a", "h1", "h2"), move("b", "h1", "h3"), move("c", "h1", "h9")])
    outs = {o.record.id: o for o in r.wait([x.id for x in recs], timeout=10)}
    a, b, c = (outs[x.id] for x in recs)
    assert (a.status, a.reason, a.record.state) == (
        OutcomeStatus.SKIPPED,
        Reason.VM_ALREADY_ON_TARGET,
        MoveState.ABORTED,
    )
    # refused by a pre-check: nothing was tried, so no quarantine
    assert (b.status, b.reason, b.record.state) == (
        OutcomeStatus.REFUSED,
        Reason.TARGET_NO_MEMORY,
        MoveState.REFUSED,
    )
    assert (c.status, c.reason, c.record.state) == (
        OutcomeStatus.REFUSED,
        Reason.TARGET_UNKNOWN,
        MoveState.REFUSED,
    )
    # not quarantined: the planner only keeps b off the targets that refused it
    assert [(p.vm, p.target, p.succeeded, p.refused) for p in store.recent_moves(0.0)] == [
        ("b", "h3", False, True),
        ("c", "h9", False, True),
    ]


def test_limits_hold_at_every_instant(sim, sim_endpoints, store) -> None:
    for i in range(6):
        sim.add_vm(f"v{i}", "h1" if i % 2 else "h2")
    sim.hosts["h4"] = type(sim.hosts["h1"])("h4")
    sim.hosts["h4"].pools = dict(sim.hosts["h1"].pools)
    sim.add_volume("h4", "/var/lib/libvirt/base/base.raw", b"B" * (4 << 20), "raw")
    eps = {**sim_endpoints, "h4": MigrationEndpoint("h4", "sim://h4", "sim://h4/system")}
    sim.faults.seconds = 0.3
    limits = LimitArgs(**{"global": 2}, per_source=1, per_target=1)
    events: list[Event] = []
    r = runner(sim, eps, store, limits, events=events)
    targets = ["h3", "h4", "h3", "h4", "h3", "h4"]
    recs = r.submit([move(f"v{i}", "h1" if i % 2 else "h2", targets[i]) for i in range(6)])
    outs = r.wait([x.id for x in recs], timeout=30)
    assert all(o.ok for o in outs), [o.detail for o in outs]
    spans = sim.log
    for _vm, src, dst, start, _end in spans:
        at = [s for s in spans if s[3] <= start < s[4]]
        assert len(at) <= 2
        assert sum(s[1] == src for s in at) <= 1 and sum(s[2] == dst for s in at) <= 1
    assert any(isinstance(e, Waiting) for e in events)


def test_abort_running_move_leaves_vm_on_source(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h1")
    sim.faults.hang = True
    r = runner(sim, sim_endpoints, store)
    rec = r.submit([move("a", "h1", "h2")])[0]
    wait_for("a migration", lambda: any(x.state == MoveState.MIGRATING for x in r.in_flight()), 5)
    assert r.abort(rec.id)
    (out,) = r.wait([rec.id], timeout=10)
    assert (out.status, out.reason, out.record.state) == (
        OutcomeStatus.ABORTED,
        Reason.ABORTED_BY_OPERATOR,
        MoveState.ABORTED,
    )
    assert sim.where("a") == [("h1", "running")]
    assert "/var/lib/libvirt/images/a.qcow2" not in sim.hosts["h2"].volumes


def test_stalled_migration_is_aborted_for_no_progress(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h1")
    sim.faults.hang = True
    r = runner(sim, sim_endpoints, store, args=FAST.model_copy(update={"no_progress_seconds": 0.5}))
    (out,) = r.wait([r.submit([move("a", "h1", "h2")])[0].id], timeout=10)
    assert (out.status, out.reason) == (OutcomeStatus.ABORTED, Reason.NO_PROGRESS)
    assert sim.where("a") == [("h1", "running")]


def test_shutdown_leaves_running_moves_and_aborts_queued(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h1")
    sim.add_vm("b", "h1")
    sim.faults.hang = True
    r = runner(sim, sim_endpoints, store, args=FAST.model_copy(update={"no_progress_seconds": 60}))
    ra, rb = r.submit([move("a", "h1", "h2"), move("b", "h1", "h3")])
    wait_for("a migration", lambda: any(x.state == MoveState.MIGRATING for x in r.in_flight()), 5)
    left = r.shutdown(grace_seconds=0.2)
    assert [x.id for x in left] == [ra.id]
    assert store.get_record(rb.id).state == MoveState.ABORTED
    assert store.get_record(rb.id).outcome == Reason.SHUTDOWN
    assert store.get_record(ra.id).state == MoveState.MIGRATING  # left to recovery, not aborted
    assert sim.jobs  # the migration itself goes on
    sim.faults.hang = False
    sim.faults.seconds = 0.0


def test_a_move_needing_room_starts_only_after_the_move_that_makes_it(sim, sim_endpoints, store) -> None:
    sim.add_vm("x", "h1")
    sim.add_vm("y", "h3")
    sim.faults.seconds = 0.3
    limits = LimitArgs(**{"global": 3}, per_source=1, per_target=1)
    events: list[Event] = []
    r = runner(sim, sim_endpoints, store, limits, events=events)
    first = r.submit([move("x", "h1", "h2")])
    (second,) = r.submit([replace(move("y", "h3", "h1"), after=("x",))])
    outs = r.wait([first[0].id, second.id], timeout=30)
    assert all(o.ok for o in outs), [o.detail for o in outs]
    spans = {vm: (start, end) for vm, _s, _d, start, end in sim.log}
    assert spans["y"][0] >= spans["x"][1], spans  # y started after x's migration ended
    waits = [e for e in events if isinstance(e, Waiting) and e.record_id == second.id]
    assert [w.reason for w in waits] == [Reason.WAIT_FOR_ROOM]


def test_a_vm_with_a_move_held_gets_no_second_one(sim, sim_endpoints, store) -> None:
    sim.add_vm("a", "h1")
    r = runner(sim, sim_endpoints, store, limits=LimitArgs(per_source=1))
    (first,) = r.submit([move("a", "h1", "h2")])
    with pytest.raises(VmBusy, match=f"a already has migration {first.id}"):
        r.submit_one(move("a", "h1", "h3"))
    assert [rec.id for rec in store.records(vm="a")] == [first.id]  # nothing journaled for the refusal


def test_bytes_copied_are_journaled_while_the_migration_runs(sim, sim_endpoints, store) -> None:
    # so a record recovered after this process died still says what libvirt had sent
    sim.add_vm("a", "h1")
    sim.faults.seconds = 3.0
    r = runner(sim, sim_endpoints, store)
    (rec,) = r.submit([move("a", "h1", "h2")])
    seen = wait_for(
        "bytes in the journal mid-migration",
        lambda: (x := store.get_record(rec.id)).state == MoveState.MIGRATING and x.disk_bytes > 0 and x,
        10,
        every=0.05,
    )
    (out,) = r.wait([rec.id], timeout=10)
    assert out.ok and 0 < seen.disk_bytes <= out.record.disk_bytes
