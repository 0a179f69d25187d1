"""Faults during real migrations: after each, exactly one running copy and a journal that matches it."""

from __future__ import annotations

import time

import pytest
from exec_labkit import (
    CALM,
    MIB,
    copies,
    ensure_base,
    make_runner,
    running_on,
    wait_for,
)

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import OutcomeStatus
from balancer.lab import Lab
from balancer.model import Move, MoveCost, MoveState
from balancer.reasons import Reason
from balancer.store import Store

pytestmark = pytest.mark.lab
SLOW = LimitArgs(bandwidth_mib_s=8)
ARGS = ExecutorArgs(memory_headroom_mib=64, settle_seconds=30, no_progress_seconds=10)


def start(lab: Lab, store: Store, vm: str, src: str, dst: str, args: ExecutorArgs = ARGS):  # type: ignore[no-untyped-def]
    runner, events = make_runner(lab, store, args=args, limits=SLOW)
    rec = runner.submit([Move(vm, src, dst, Reason.DRAIN, MoveCost(0, 0, 0, 0.0))])[0]
    wait_for(
        "the disk mirror under way",
        lambda: any(
            p.phase in ("disk", "memory") and p.bytes_copied > 8 * MIB for _, p in events.progress(rec.id)
        ),
        90,
    )
    return runner, rec, events


def assert_journal_matches(lab: Lab, store: Store, record_id: str, vm: str, src: str, dst: str) -> MoveState:
    saved = store.get_record(record_id)
    where = wait_for(
        f"one running copy of {vm}", lambda: (r := running_on(lab, vm)) and len(r) == 1 and r, 60
    )
    wait_for(f"no other domain {vm}", lambda: len(copies(lab, vm)) == 1, 60)
    if saved.state == MoveState.SUCCEEDED:
        assert where == [dst]
    else:
        assert saved.state in (MoveState.FAILED, MoveState.ABORTED), (saved.state, saved.detail)
        assert where == [src], saved.detail
    return saved.state


def test_target_libvirtd_killed_mid_migration(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    guest = lab_guest(host="h1", **CALM)
    runner, rec, _events = start(lab, store, guest.name, "h1", "h2")
    lab.kill_libvirtd("h2")
    try:
        wait_for(
            "the migrate call to fail", lambda: store.get_record(rec.id).state != MoveState.MIGRATING, 60
        )
    finally:
        lab.start_libvirtd("h2")
    (out,) = runner.wait([rec.id], timeout=120)
    assert out.status in (OutcomeStatus.FAILED, OutcomeStatus.ABORTED), out.detail
    assert out.record.error_message, out.detail
    assert assert_journal_matches(lab, store, rec.id, guest.name, "h1", "h2") != MoveState.SUCCEEDED
    lab.wait_heartbeat("h1", guest.name, after=lab.heartbeat("h1", guest.name), timeout=30)


def test_source_libvirtd_restarted_mid_migration(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    guest = lab_guest(host="h2", **CALM)
    runner, rec, _events = start(lab, store, guest.name, "h2", "h3")
    lab.restart_libvirtd("h2")
    (out,) = runner.wait([rec.id], timeout=180)
    print(out.status, out.reason, out.detail, out.record.error_message)
    assert out.status != OutcomeStatus.NEEDS_ATTENTION, out.detail
    assert_journal_matches(lab, store, rec.id, guest.name, "h2", "h3")


def test_network_cut_mid_migration(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    """The link to the target goes down: no bytes move, the executor aborts after no_progress_seconds;
    the link comes back a few seconds later (a transient cut) and the abort completes."""
    guest = lab_guest(host="h3", **CALM)
    runner, rec, events = start(lab, store, guest.name, "h3", "h1")
    lab.link_down("h1")
    try:
        wait_for(
            "the executor to abort", lambda: any("aborting migration" in str(e) for _, e in events.events), 60
        )
    finally:
        lab.link_up("h1")
    (out,) = runner.wait([rec.id], timeout=120)
    print(out.status, out.reason, out.detail, out.record.error_message)
    assert (out.status, out.reason) == (OutcomeStatus.ABORTED, Reason.NO_PROGRESS), out.detail
    assert_journal_matches(lab, store, rec.id, guest.name, "h3", "h1")


def test_guest_dirtying_faster_than_the_cap_is_stopped_in_time(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    """A guest rewriting its RAM faster than a 1 MiB/s cap is detected (by the dirty rate when libvirt
    reports one, else by the RAM remainder staying flat across iterations) and on_stall=abort ends it
    within the deadline.

    Measured here: the guest rewrites 4 MiB of RAM a second (all its live data), so the remainder
    stays near 6 MiB while QEMU would need it under 0.3 MiB (300 ms at 1 MiB/s) to switch over. The
    first pass of its RAM takes most of the time at the cap: aborted after ~93 s, 4 iterations.
    """
    guest = lab_guest(host="h1", memory_mib=96, dirty_mib_s=4, disk_mib_s=0, overlay_mib=0)
    ensure_base(lab, "h2", True)  # only RAM travels
    args = ExecutorArgs(
        memory_headroom_mib=64,
        settle_seconds=30,
        stall_iterations=2,
        on_stall="abort",
        completion_timeout_s_per_gib=90,
        completion_timeout_min_gib=2,
    )
    runner, events = make_runner(lab, store, args=args, limits=LimitArgs(bandwidth_mib_s=1))
    started = time.monotonic()
    rec = runner.submit([Move(guest.name, "h1", "h2", Reason.DRAIN, MoveCost(0, 0, 0, 0.0))])[0]
    (out,) = runner.wait([rec.id], timeout=300)
    took = time.monotonic() - started
    iters = max((p.memory_iteration for _, p in events.progress(rec.id)), default=0)
    print(f"{out.status} {out.reason} after {took:.0f} s, {iters} iterations: {out.detail}")
    assert (out.status, out.reason) == (OutcomeStatus.ABORTED, Reason.NOT_CONVERGING), out.detail
    assert took < 180  # the completion timeout for this move (90 s per GiB, at least 2 GiB)
    assert_journal_matches(lab, store, rec.id, guest.name, "h1", "h2")
    beat = lab.heartbeat("h1", guest.name)
    lab.wait_heartbeat("h1", guest.name, after=beat, timeout=30)  # still alive on the source


# kill -9 of the balancer mid-migration, then recovery: tests/executor/test_kill_loop.py (20 seeded points).
