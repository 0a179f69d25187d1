"""The VM's owner destroys it, or shuts it down from inside, while its disk is being mirrored.

The test plays the owner (the product never stops a domain). The move must end ``failed`` with
libvirt's reason at once (no waiting for a settle deadline), the target must be clean (no domain,
none of the move's volumes, nothing in the ledger), and once the owner starts the VM again a new
migration to the same target must succeed with the guest's disk intact.
"""

from __future__ import annotations

import time

import pytest
from exec_labkit import CALM, MIB, copies, ensure_base, make_runner, running_on, target_leftovers, wait_for

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import OutcomeStatus
from balancer.lab import Lab
from balancer.model import Move, MoveCost, MoveState
from balancer.reasons import Reason
from balancer.store import Store

pytestmark = pytest.mark.lab
ARGS = ExecutorArgs(memory_headroom_mib=64, settle_seconds=30, no_progress_seconds=20)


def move(vm: str) -> Move:
    return Move(vm, "h1", "h2", Reason.DRAIN, MoveCost(0, 0, 0, 0.0))


@pytest.mark.parametrize(("act", "why"), [("destroy", "destroyed"), ("poweroff", "shutdown")])
def test_owner_stops_the_vm_mid_disk_phase(lab: Lab, lab_guest, store: Store, act: str, why: str) -> None:  # type: ignore[no-untyped-def]
    guest = lab_guest(host="h1", console=1, **CALM)
    ensure_base(lab, "h2", True)
    disk = lab.disk_checksum("h1", guest.name)  # the calm guest never writes its disk
    runner, events = make_runner(lab, store, args=ARGS, limits=LimitArgs(bandwidth_mib_s=8))
    rec = runner.submit([move(guest.name)])[0]
    wait_for(
        "the disk mirror under way",
        lambda: any(p.phase == "disk" and p.bytes_copied > 8 * MIB for _, p in events.progress(rec.id)),
        90,
    )
    stopped = time.monotonic()
    if act == "destroy":
        conn = lab.connect("h1")
        try:
            conn.lookupByName(guest.name).destroy()
        finally:
            conn.close()
    else:
        lab.guest_command("h1", guest.name, "poweroff")
    (out,) = runner.wait([rec.id], timeout=120)
    took = time.monotonic() - stopped
    print(f"{act}: {out.status} {out.reason} {took:.1f} s after the owner acted: {out.detail}")
    assert (out.status, out.reason, out.record.state) == (
        OutcomeStatus.FAILED,
        Reason.SOURCE_STOPPED,
        MoveState.FAILED,
    )
    assert f"shutoff ({why})" in out.detail
    assert out.record.error_code is not None and out.record.error_message  # the migrate call's libvirt error
    assert took < ARGS.settle_seconds  # settled at once, not after waiting out the deadline
    assert copies(lab, guest.name) == [("h1", "shut off")]
    assert target_leftovers(lab, store, "h2", guest.name) == []
    assert out.record.removed_volumes == (f"/var/lib/libvirt/images/{guest.name}.qcow2",)

    conn = lab.connect("h1")  # the owner starts it again
    try:
        conn.lookupByName(guest.name).create()
    finally:
        conn.close()
    lab.wait_heartbeat("h1", guest.name, timeout=120)
    beat = lab.heartbeat("h1", guest.name)
    again = runner.submit([move(guest.name)])[0]
    (out,) = runner.wait([again.id], timeout=180)
    assert out.status == OutcomeStatus.SUCCEEDED, out.detail
    assert running_on(lab, guest.name) == ["h2"]
    lab.wait_live_arrival("h2", guest.name, after=beat or 0)
    assert lab.disk_checksum("h2", guest.name) == disk
    wait_for("the journal to be final", lambda: store.get_record(again.id).state == MoveState.SUCCEEDED, 10)
