"""Drain progress, computed (purely) from the latest snapshot, plan and journal.

A drain is done when its host holds no VM, blocked when VMs remain and none of them has a planned
or running move (each then carries a blocker with the planner's reason), otherwise in progress.
The ETA is the bytes still to copy over the bandwidth the limits allow out of one host: a
prediction from the caps, and the API and metrics say so.
"""

from __future__ import annotations

from collections.abc import Iterable

from balancer.model import MigrationRecord, MoveState, Plan, Snapshot
from balancer.store.records import Blocker, DrainProgress

_FAILED = (MoveState.FAILED, MoveState.ABORTED, MoveState.NEEDS_ATTENTION)


def drain_bandwidth(per_source: int, bandwidth_mib_s: int, host_bandwidth_mib_s: int) -> float:
    """Bytes/s the limits allow out of one draining host."""
    return float(min(per_source * bandwidth_mib_s, host_bandwidth_mib_s) * 2**20)


def progress(
    host: str,
    snapshot: Snapshot,
    plan: Plan | None,
    records: Iterable[MigrationRecord],
    since: float,
    bandwidth_bytes_s: float,
) -> DrainProgress:
    """Progress of the drain of ``host`` opened at ``since`` (epoch seconds).

    ``records`` are journal records of any host; those leaving ``host`` after ``since`` count as
    done, failed or in flight. Remaining bytes are the VMs' own disks plus RAM: what their moves
    copy at least.
    """
    remaining = sorted((v for v in snapshot.vms if v.host == host), key=lambda v: v.name)
    leaving = [r for r in records if r.source == host and r.created_at >= since]
    in_flight = tuple(sorted({r.vm for r in leaving if not r.state.final}))
    done = sum(1 for r in leaving if r.state == MoveState.SUCCEEDED)
    failed = sum(1 for r in leaving if r.state in _FAILED)
    bytes_remaining = sum(v.disk_allocated_bytes + v.memory_bytes for v in remaining)

    planned = {m.vm for m in plan.moves} if plan is not None else set()
    skip_of = {s.name: s for s in plan.skips if s.subject == "vm"} if plan is not None else {}
    blockers = tuple(
        Blocker(vm=v.name, reason=skip_of[v.name].reason, detail=skip_of[v.name].detail)
        for v in remaining
        if v.name not in planned and v.name not in in_flight and v.name in skip_of
    )
    eta: float | None
    if not remaining:
        eta = 0.0
    elif len(blockers) == len(remaining) or bandwidth_bytes_s <= 0:
        eta = None  # nothing can move: no honest ETA
    else:
        eta = bytes_remaining / bandwidth_bytes_s
    return DrainProgress(
        vms_remaining=len(remaining),
        bytes_remaining=bytes_remaining,
        in_flight=in_flight,
        done=done,
        failed=failed,
        eta_seconds=eta,
        blockers=blockers,
    )
