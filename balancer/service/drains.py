"""Drain progress, computed (purely) from the latest snapshot, plan and journal.

A drain is done when its host holds no VM, blocked when VMs remain and none of them has a planned
or running move (each then carries a blocker with the planner's reason), otherwise in progress.
The ETA is the bytes still to copy over the bandwidth the limits allow out of one host: a
prediction from the caps, and the API and metrics say so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from balancer.metrics.export import DrainGauge, Metrics
from balancer.model import MigrationRecord, MoveState, Plan, Snapshot
from balancer.store import Store
from balancer.store.records import Blocker, DrainProgress, DrainRequest, Fence

log = logging.getLogger("balancer.service")

_FAILED = (MoveState.FAILED, MoveState.ABORTED, MoveState.NEEDS_ATTENTION)


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


class DrainBook:
    """The leader's bookkeeping of open drains each tick: progress, done, blockers, gauges."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self._blockers_logged: dict[str, tuple[tuple[str, str, str], ...]] = {}

    def update(
        self,
        open_drains: Mapping[str, DrainRequest],
        drained: set[str],
        snap: Snapshot,
        plan: Plan | None,
        now: float,
        fence: Fence,
        bandwidth_bytes_s: float,
    ) -> None:
        """Record progress of every open drain (fenced), close those whose host is empty, log blockers
        once when they change, and set the drain gauges."""
        # Hosts held in maintenance by a finished drain read 0 (not absent), so graphs end at zero.
        gauges: dict[str, DrainGauge] = {h: DrainGauge(0, 0, 0.0, 0) for h in drained}
        if open_drains:
            since = min(d.created_at for d in open_drains.values())
            records = self.store.records(since=since)
            for host, d in open_drains.items():
                gauges[host] = self._one(host, d, snap, plan, records, now, fence, bandwidth_bytes_s)
        self.metrics.state.update(drains=gauges)

    def _one(
        self,
        host: str,
        d: DrainRequest,
        snap: Snapshot,
        plan: Plan | None,
        records: Iterable[MigrationRecord],
        now: float,
        fence: Fence,
        bandwidth_bytes_s: float,
    ) -> DrainGauge:
        p = progress(host, snap, plan, records, d.created_at, bandwidth_bytes_s)
        if p.vms_remaining == 0 and not p.in_flight:
            self.store.finish_drain(d.id, now, progress=p, fence=fence)
            log.info("event=drain_done host=%s id=%d done=%d failed=%d", host, d.id, p.done, p.failed)
            return DrainGauge(vms_remaining=0, bytes_remaining=0, eta_seconds=0.0, blocked_vms=0)
        self.store.update_drain_progress(d.id, p, now, fence=fence)
        seen = tuple((b.vm, b.reason.value, b.detail) for b in p.blockers)
        if self._blockers_logged.get(host) != seen:  # one line when the blockers change, not every tick
            self._blockers_logged[host] = seen
            for b in p.blockers:
                log.warning(
                    "event=drain_blocked host=%s vm=%s reason=%s detail=%r",
                    host,
                    b.vm,
                    b.reason.value,
                    b.detail,
                )
        return DrainGauge(
            vms_remaining=p.vms_remaining,
            bytes_remaining=p.bytes_remaining,
            eta_seconds=p.eta_seconds,
            blocked_vms=len(p.blockers),
            deadline=d.deadline,
        )
