"""Model and store values → the API's response models (pure functions; the CLI uses them too)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from balancer.api.schemas import (
    BlockerOut,
    CostOut,
    DiskOut,
    DrainOut,
    HostOut,
    LibvirtErrorOut,
    Load,
    LoadChangeOut,
    MigrationOut,
    MoveOut,
    PlanOut,
    PlanSummary,
    ProgressNow,
    ProgressOut,
    SkipOut,
    VMOut,
)
from balancer.model import VM, Host, LoadChange, MigrationRecord, PastMove, Snapshot
from balancer.store.records import DrainRequest, DrainState, PlanMoveRow, PlanRow


def hosts(names: Iterable[str], snap: Snapshot | None, open_drains: Mapping[str, int]) -> list[HostOut]:
    """Every configured host (in config order), then any other host the snapshot holds."""
    seen = {h.name: h for h in snap.hosts} if snap is not None else {}
    order = list(dict.fromkeys([*names, *seen]))
    return [host(n, seen.get(n), snap, open_drains.get(n)) for n in order]


def host(name: str, h: Host | None, snap: Snapshot | None, drain_id: int | None) -> HostOut:
    vms = snap.vms_on(name) if snap is not None else ()
    load = None
    if h is not None and snap is not None:
        ratio = snap.load_ratios()[name]
        load = Load(cpu=ratio["cpu"], memory=ratio["memory"])
    return HostOut(
        name=name,
        state=h.state if h is not None else "unknown",
        cpus=h.cpus if h else None,
        memory_bytes=h.memory_bytes if h else None,
        disk_capacity_bytes=h.disk_capacity_bytes if h else None,
        disk_free_bytes=h.disk_free_bytes if h else None,
        load=load,
        vms=len(vms),
        vm_disk_bytes=sum(v.disk_allocated_bytes for v in vms),
        vm_memory_bytes=sum(v.memory_bytes for v in vms),
        labels=dict(h.labels) if h else {},
        error=h.error if h else None,
        drain_id=drain_id,
    )


@dataclass(frozen=True)
class Holds:
    """Why the planner leaves a VM alone for now (the policy's cooldown and quarantine), per VM."""

    cooldown_until: Mapping[str, float]
    quarantined_until: Mapping[str, float]
    moving: Mapping[str, str]  # VM -> the leader's unfinished migration of it

    @classmethod
    def of(
        cls,
        recent: Iterable[PastMove],
        in_flight: Iterable[MigrationRecord],
        cooldown_minutes: float,
        quarantine_minutes: float,
    ) -> Holds:
        """From finished moves (as policy/constraints.py judges them) and the moves in flight."""
        cooldown: dict[str, float] = {}
        quarantine: dict[str, float] = {}
        for pm in recent:
            if pm.succeeded:
                cooldown[pm.vm] = max(cooldown.get(pm.vm, 0.0), pm.finished_at + cooldown_minutes * 60)
            else:
                quarantine[pm.vm] = max(quarantine.get(pm.vm, 0.0), pm.finished_at + quarantine_minutes * 60)
        return cls(cooldown, quarantine, {r.vm: r.id for r in in_flight if not r.state.final})


NO_HOLDS = Holds({}, {}, {})


def vm(v: VM, holds: Holds = NO_HOLDS, now: float = 0.0) -> VMOut:
    cooling = holds.cooldown_until.get(v.name)
    quarantined = holds.quarantined_until.get(v.name)
    return VMOut(
        name=v.name,
        uuid=v.uuid,
        host=v.host,
        state=v.state,
        vcpus=v.vcpus,
        memory_bytes=v.memory_bytes,
        memory_used_bytes=v.memory_used_bytes,
        cpu_cores=v.cpu_cores,
        cpu_std_cores=v.cpu_std_cores,
        dirty_rate_bytes_s=v.dirty_rate_bytes_s,
        disk_allocated_bytes=v.disk_allocated_bytes,
        disks=[
            DiskOut(
                target=d.target,
                path=d.path,
                format=d.format,
                virtual_bytes=d.virtual_bytes,
                allocated_bytes=d.allocated_bytes,
                chain_bytes=d.chain_bytes,
                backing=[b.path for b in d.backing],
            )
            for d in v.disks
        ],
        exclude=v.tags.exclude,
        pin_hosts=list(v.tags.pin_hosts),
        groups=list(v.tags.groups),
        persistent=v.persistent,
        migrating=v.migrating,
        migration_id=holds.moving.get(v.name),
        cooldown_until=cooling if cooling is not None and cooling > now else None,
        quarantined_until=quarantined if quarantined is not None and quarantined > now else None,
    )


def _change(c: LoadChange | None) -> LoadChangeOut | None:
    return None if c is None else LoadChangeOut(before=dict(c.before), after=dict(c.after))


def move(row: PlanRow, m: PlanMoveRow) -> MoveOut:
    planned = row.plan.moves[m.index] if m.index < len(row.plan.moves) else None
    cost = planned.cost if planned is not None else None
    return MoveOut(
        plan_id=m.plan_id,
        index=m.index,
        vm=m.vm,
        source=m.source,
        target=m.target,
        reason=m.reason,
        detail=planned.detail if planned else "",
        flags=list(planned.flags) if planned else [],
        after=list(planned.after) if planned else [],
        status=m.status,
        decided_by=m.decided_by,
        decided_at=m.decided_at,
        migration_id=m.migration_id,
        cost=CostOut(
            disk_bytes=cost.disk_bytes if cost else 0,
            backing_bytes=cost.backing_bytes if cost else 0,
            memory_bytes=cost.memory_bytes if cost else 0,
            total_bytes=cost.total_bytes if cost else m.bytes,
            seconds=cost.seconds if cost else 0.0,
            copy_mode=cost.copy_mode if cost else "incremental",
            converges=cost.converges if cost else True,
        ),
        source_load=_change(planned.source_load) if planned else None,
        target_load=_change(planned.target_load) if planned else None,
        imbalance_before=planned.imbalance_before if planned else 0.0,
        imbalance_after=planned.imbalance_after if planned else 0.0,
    )


def _summary_fields(row: PlanRow) -> dict[str, object]:
    by_status: dict[str, int] = {}
    for m in row.moves:
        by_status[m.status.value] = by_status.get(m.status.value, 0) + 1
    return {
        "id": row.id,
        "status": row.status,
        "automation": row.automation,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "move_count": len(row.moves),
        "skip_count": len(row.plan.skips),
        "moves_by_status": by_status,
        "predicted_bytes": sum(m.bytes for m in row.moves),
        "imbalance_before": row.plan.imbalance_before,
        "imbalance_after": row.plan.imbalance_after,
        "expires_at": row.expires_at,
    }


def plan_summary(row: PlanRow) -> PlanSummary:
    return PlanSummary.model_validate(_summary_fields(row))


def plan(row: PlanRow) -> PlanOut:
    p = row.plan
    return PlanOut.model_validate(
        {
            **_summary_fields(row),
            "moves": [move(row, m) for m in row.moves],
            "skips": [
                SkipOut(subject=s.subject, name=s.name, reason=s.reason, detail=s.detail) for s in p.skips
            ],
            "resource_imbalance_before": dict(p.resource_imbalance_before),
            "resource_imbalance_after": dict(p.resource_imbalance_after),
            "overloaded_before": list(p.overloaded_before),
            "overloaded_after": list(p.overloaded_after),
        }
    )


def migration(r: MigrationRecord, progress: ProgressNow | None = None) -> MigrationOut:
    error = None
    if r.error_message is not None or r.error_code is not None:
        error = LibvirtErrorOut(code=r.error_code, domain=r.error_domain, message=r.error_message or "")
    return MigrationOut(
        id=r.id,
        vm=r.vm,
        vm_uuid=r.vm_uuid,
        source=r.source,
        target=r.target,
        reason=r.reason,
        state=r.state,
        final=r.state.final,
        outcome=r.outcome,
        error=error,
        detail=r.detail,
        plan_id=r.plan_id,
        created_at=r.created_at,
        updated_at=r.updated_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        bandwidth_mib_s=r.bandwidth_mib_s,
        copy_mode=r.copy_mode,
        predicted_bytes=r.predicted_bytes,
        backing_bytes=r.backing_bytes,
        disk_bytes=r.disk_bytes,
        memory_bytes=r.memory_bytes,
        downtime_ms=r.downtime_ms,
        epoch=r.epoch,
        drain_id=r.drain_id,
        progress=progress if not r.state.final else None,
    )


def drain(d: DrainRequest, now: float) -> DrainOut:
    p = d.progress
    progress = None
    if p is not None:
        progress = ProgressOut(
            vms_remaining=p.vms_remaining,
            bytes_remaining=p.bytes_remaining,
            in_flight=list(p.in_flight),
            done=p.done,
            failed=p.failed,
            eta_seconds=p.eta_seconds,
            blockers=[
                BlockerOut(vm=b.vm, reason=b.reason, detail=b.detail, message=b.detail or b.reason.value)
                for b in p.blockers
            ],
        )
    is_open = d.state == DrainState.OPEN
    return DrainOut(
        id=d.id,
        host=d.host,
        state=d.state,
        requested_by=d.requested_by,
        created_at=d.created_at,
        updated_at=d.updated_at,
        deadline=d.deadline,
        closed_at=d.closed_at,
        closed_by=d.closed_by,
        note=d.note,
        progress=progress,
        blocked=d.blocked,
        overdue=is_open and d.deadline is not None and now > d.deadline,
    )
