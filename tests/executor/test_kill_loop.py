"""kill -9 the balancer at seeded-random points of a backing copy, a disk mirror and a memory copy.

Each iteration draws a guest, a target, a phase (the base image streaming to a target that lacks
it, libvirt's disk mirror, its memory copy), a point in that phase and a ``backing_verify``
setting; a child process runs the move through a Runner and is SIGKILLed at that point. Then the
next operations run in a drawn order: recovery (``recover``) and another migration to the same
target (of the killed guest, or of the other one when the killed migration may still be running).
After every iteration, for every guest: exactly one running copy, its disk reads exactly as it did
at the start (it never writes its disk), nothing of any move on a host that does not run it (no
domain, no disk, no incomplete base image anywhere, nothing unproven in the ledger), and every
journal record final and matching what libvirt showed.

Sizes keep an iteration to seconds: 96 MiB guests with a 16 MiB overlay, 64 MiB/s caps.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from exec_labkit import (
    BASE,
    CALM,
    MIB,
    CrashChild,
    copies,
    endpoints,
    make_runner,
    partial_bases,
    running_on,
    target_leftovers,
    wait_for,
)

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import OutcomeStatus
from balancer.executor.libvirt_hypervisor import libvirt_factory
from balancer.executor.recovery import recover
from balancer.lab import Lab
from balancer.model import MigrationRecord, Move, MoveCost, MoveState
from balancer.reasons import Reason
from balancer.store import Store
from tests.leader import journal_of

pytestmark = pytest.mark.lab
SEED = 13
ITERATIONS = 20
CAP = 64  # the killed moves
NEXT_CAP = 100  # the moves after them
GUEST = {**CALM, "memory_mib": 96, "overlay_mib": 16}
BASE_BYTES = 128 * MIB


def args(verify: str) -> ExecutorArgs:
    return ExecutorArgs(
        memory_headroom_mib=64,
        settle_seconds=30,
        recovery_wait_seconds=120,
        no_progress_seconds=30,
        backing_verify=verify,  # type: ignore[arg-type]
    )


def where(lab: Lab, vm: str) -> str:
    hosts = running_on(lab, vm)
    assert len(hosts) == 1, f"{vm} runs on {hosts}; its copies: {copies(lab, vm)}"
    return hosts[0]


def test_kill_9_at_random_points_then_recover_and_migrate(lab: Lab, lab_guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(SEED)
    guests = [lab_guest(host="h1", wait=False, **GUEST).name, lab_guest(host="h2", wait=False, **GUEST).name]
    for vm, host in zip(guests, ("h1", "h2"), strict=True):
        lab.wait_heartbeat(host, vm, timeout=120)
    disk = {vm: lab.disk_checksum(where(lab, vm), vm) for vm in guests}  # the calm guests never write it
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    store = Store.open(url)
    hv = libvirt_factory(endpoints(lab))
    outcomes: dict[str, int] = {}
    orders: dict[str, bool] = {}
    done = 0
    started = time.monotonic()
    try:
        for i in range(ITERATIONS):
            t0 = time.monotonic()
            verify = ("sha256", "size")[i % 2]
            phase = rng.choice(["copy", "disk", "memory"])
            chained = [g for g in guests if _on_base(lab, g)]  # a whole-disk copy leaves a VM without
            if phase == "copy" and not chained:  # a backing file: nothing to stream for it any more
                phase = rng.choice(["disk", "memory"])
            vm = rng.choice(chained if phase == "copy" else guests)
            src = where(lab, vm)
            if phase == "copy":  # a target whose base no domain uses, which is then removed
                dst = rng.choice(
                    [h.name for h in lab.hosts if h.name != src and not _base_in_use(lab, h.name)]
                )
                _remove_base(lab, dst)
            else:
                dst = rng.choice(sorted({h.name for h in lab.hosts} - {src}))
            point = rng.uniform(0.05, 0.95)
            recover_first = orders.get(phase, rng.random() < 0.5)  # then alternates, for each phase
            orders[phase] = not recover_first

            print(f"#{i:02d} begins: {vm} {src}->{dst} {phase}@{point:.2f}", flush=True)
            child = CrashChild(lab, url, vm, src, dst, CAP, verify)
            hit = child.wait_point(_kill_point(phase, point), 180)
            child.kill()
            t_kill = time.monotonic()
            killed = store.get_record(child.record_id)

            if recover_first:
                recovered = _recover(store, hv, verify, child.record_id)
                placed = where(lab, vm)
                nxt = _next_move(lab, store, guests, vm, dst, verify)
            else:
                nxt = _next_move(lab, store, guests, vm, dst, verify)
                recovered = _recover(store, hv, verify, child.record_id)
                placed = where(lab, vm) if nxt is None or nxt.vm != vm else killed.source
            t_ops = time.monotonic()
            print(
                f"#{i:02d} {vm} {src}->{dst} {phase}@{point:.2f} verify={verify} "
                f"{'recover,migrate' if recover_first else 'migrate,recover'}: "
                f"killed in {killed.state.value} ({'at the point' if hit else 'after the move ended'}); "
                f"recovered {recovered.state.value}/{recovered.outcome}; "
                f"next {nxt.vm + ' ' + nxt.state.value + ' ' + str(nxt.copy_mode) if nxt else '-'}; "
                f"to the kill {t_kill - t0:.1f} s, recovery and next move {t_ops - t_kill:.1f} s"
            )
            if not hit:
                print(f"    the move ended before the point; the child's last lines: {child.seen[-6:]}")
            key = f"{killed.state.value}->{recovered.state.value}"
            outcomes[key] = outcomes.get(key, 0) + 1
            _check_record(lab, recovered, killed, placed, phase)
            _check_cluster(lab, store, guests, disk)
            done += 1
            print(f"    checked in {time.monotonic() - t_ops:.1f} s")
    finally:
        print(f"{done} of {ITERATIONS} iterations passed in {time.monotonic() - started:.0f} s: {outcomes}")
        store.close()


def _on_base(lab: Lab, vm: str) -> bool:
    """Whether the VM's disk still reads through the base image (it was never copied whole)."""
    conn = lab.connect(where(lab, vm))
    try:
        return BASE in conn.lookupByName(vm).XMLDesc(0)
    finally:
        conn.close()


def _base_in_use(lab: Lab, host: str) -> bool:
    return _in_use(lab, host, BASE)


def _in_use(lab: Lab, host: str, path: str) -> bool:
    """Whether a domain on ``host`` has ``path`` in its disk chain."""
    conn = lab.connect(host)
    try:
        return any(path in d.XMLDesc(0) for d in conn.listAllDomains(0))
    finally:
        conn.close()


def _remove_base(lab: Lab, host: str) -> None:
    """Delete the host's base image, as an operator clearing an image cache would (nothing uses it)."""
    conn = lab.connect(host)
    try:
        pool = conn.storagePoolLookupByName("base")
        pool.refresh(0)
        if "labguest-base.raw" in pool.listVolumes():
            pool.storageVolLookupByName("labguest-base.raw").delete(0)
    finally:
        conn.close()


def _kill_point(phase: str, point: float) -> Callable[[str, int], bool]:
    """When to kill: ``point`` of the base's bytes streamed, of the overlay's bytes mirrored, or in
    the memory phase at its ``1 + int(point * 8)``-th progress line (0.1 s apart: how much RAM it
    sends depends on what the guest touched, ~70-200 MiB here: always more than 0.9 s of it)."""
    if phase == "copy":
        return lambda p, n: p == "copying_backing" and n >= point * BASE_BYTES
    if phase == "disk":
        return lambda p, n: (p == "disk" and n >= point * GUEST["overlay_mib"] * MIB) or p == "memory"
    lines = iter(range(int(point * 8), -1, -1))
    return lambda p, _n: p == "memory" and next(lines) == 0


def _recover(store: Store, hv, verify: str, record_id: str) -> MigrationRecord:  # type: ignore[no-untyped-def]
    done = {r.id: r for r in recover(journal_of(store), hv, args(verify))}
    assert store.unfinished_records() == () and store.records_needing_attention() == (), done
    return store.get_record(record_id)


def _next_move(
    lab: Lab, store: Store, guests: list[str], vm: str, dst: str, verify: str
) -> MigrationRecord | None:
    """Another migration to the same target: of the killed guest if it is not there (and its record
    is settled), else of the other guest if that one is not there."""
    unsettled = {r.vm for r in store.unfinished_records()}  # the killed move may still run in libvirt
    candidates = [
        g for g in (vm, *[g for g in guests if g != vm]) if g not in unsettled and where(lab, g) != dst
    ]
    if not candidates:
        return None
    g = candidates[0]
    runner, _ = make_runner(lab, store, args=args(verify), limits=LimitArgs(bandwidth_mib_s=NEXT_CAP))
    try:
        (out,) = runner.wait(
            [runner.submit([Move(g, where(lab, g), dst, Reason.MANUAL, MoveCost(0, 0, 0, 0.0))])[0].id], 240
        )
    finally:
        runner.shutdown(0)
    assert out.status == OutcomeStatus.SUCCEEDED, (out.reason, out.detail)
    assert running_on(lab, g) == [dst]
    return out.record


def _check_record(lab: Lab, rec: MigrationRecord, killed: MigrationRecord, placed: str, phase: str) -> None:
    """The killed move's journal matches where libvirt had the VM when it was reconciled."""
    assert rec.state.final and rec.state != MoveState.NEEDS_ATTENTION, rec.detail
    asked = killed.state in (MoveState.MIGRATING, MoveState.VERIFYING)
    if killed.state.final:  # the move ended before the kill point: nothing for recovery to do
        assert rec == killed
        return
    if phase == "memory":
        assert killed.disk_bytes > 0, "the bytes copied so far were not in the journal when it died"
    if rec.state == MoveState.SUCCEEDED:
        assert asked and placed == rec.target, rec.detail
        assert rec.disk_bytes >= killed.disk_bytes and rec.memory_bytes > 0  # libvirt's figures kept
    elif asked:
        assert rec.state == MoveState.FAILED and placed == rec.source, rec.detail
    else:  # libvirt was never asked: never a success, wherever the VM went next
        assert (rec.state, rec.outcome) == (MoveState.ABORTED, Reason.SHUTDOWN), rec.detail
    left = set(rec.created_volumes) - set(rec.removed_volumes)  # what it made and is still there:
    assert all(_in_use(lab, rec.target, p) for p in left), (left, rec.detail)  # only what a VM runs on
    assert rec.backing_bytes >= killed.backing_bytes


def _check_cluster(lab: Lab, store: Store, guests: list[str], disk: dict[str, str]) -> None:
    for vm in guests:
        host = wait_for(f"one running copy of {vm}", partial(_the_one_host, lab, vm), 60)
        assert copies(lab, vm) == [(host, "running")]
        assert lab.disk_checksum(host, vm) == disk[vm], f"{vm}'s disk on {host} differs from what it was"
        for other in (h.name for h in lab.hosts if h.name != host):
            assert target_leftovers(lab, store, other, vm) == [], (vm, other)
        beat = lab.heartbeat(host, vm)
        lab.wait_heartbeat(host, vm, after=beat, timeout=30)  # alive
    assert partial_bases(lab) == []  # every base left anywhere is complete (a cache, not garbage)
    assert store.target_volumes(state="provisional") == ()
    assert all(r.state.final and r.state != MoveState.NEEDS_ATTENTION for r in store.records())


def _the_one_host(lab: Lab, vm: str) -> str | None:
    running = running_on(lab, vm)
    return running[0] if len(running) == 1 else None
