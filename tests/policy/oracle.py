"""Independent arithmetic for checking plans: apply moves to a snapshot and recompute loads and imbalance.

Written from the spec, not from balancer.policy, so the property tests compare two implementations.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from balancer.model import HostState, Move, Plan, PlannerState, Snapshot
from balancer.policy import PlanArgs

MIB = 1 << 20


def apply(snap: Snapshot, moves: tuple[Move, ...] | list[Move]) -> Snapshot:
    """The snapshot after the moves: each VM on its target."""
    where = {m.vm: m.target for m in moves}
    return replace(snap, vms=tuple(replace(v, host=where.get(v.name, v.host)) for v in snap.vms))


def usable(snap: Snapshot, args: PlanArgs) -> dict[str, tuple[float, float]]:
    t = args.thresholds
    return {
        h.name: (
            max(h.cpus - t.cpu_reserve_cores, 0.0),
            max(h.memory_bytes - t.memory_reserve_mib * MIB, 0.0),
        )
        for h in snap.hosts
    }


def used(snap: Snapshot, state: PlannerState, cpu_sigmas: float = 0.0) -> dict[str, list[float]]:
    """cpu, memory, disk used per host, VMs in flight counted on their target; a VM's CPU is its
    mean plus ``cpu_sigmas`` (policy.cpu_burst_sigmas) standard deviations."""
    flight = {m.vm: m.target for m in state.in_flight}
    out = {h.name: [0.0, 0.0, 0.0] for h in snap.hosts}
    for v in snap.vms:
        host = flight.get(v.name, v.host)
        if host in out:
            out[host][0] += v.cpu_cores + cpu_sigmas * v.cpu_std_cores
            out[host][1] += v.memory_bytes
            out[host][2] += v.disk_allocated_bytes
    return out


def loads(snap: Snapshot, state: PlannerState, args: PlanArgs) -> dict[str, tuple[float, float]]:
    cap, use = usable(snap, args), used(snap, state, args.policy.cpu_burst_sigmas)
    return {
        h: (use[h][0] / c[0] if c[0] > 0 else 0.0, use[h][1] / c[1] if c[1] > 0 else 0.0)
        for h, c in cap.items()
    }


def active(snap: Snapshot, state: PlannerState, args: PlanArgs) -> list[str]:
    cap = usable(snap, args)
    return [
        h.name
        for h in snap.hosts
        if h.state == HostState.UP
        and h.name not in state.draining
        and h.name not in args.rules.exclude_hosts
        and cap[h.name][0] > 0
        and cap[h.name][1] > 0
    ]


def imbalance(snap: Snapshot, state: PlannerState, args: PlanArgs) -> tuple[float, float, float]:
    """(combined, cpu, memory) weighted std-dev over the active hosts."""
    names = active(snap, state, args)
    ld = loads(snap, state, args)
    if len(names) < 2:
        return 0.0, 0.0, 0.0
    cpu = float(np.std([ld[n][0] for n in names]))
    mem = float(np.std([ld[n][1] for n in names]))
    w = (args.policy.cpu_weight, args.policy.memory_weight)
    total = w[0] + w[1]
    return ((w[0] * cpu + w[1] * mem) / total if total > 0 else 0.0), cpu, mem


def moved_vms(plan: Plan) -> dict[str, str]:
    return {m.vm: m.target for m in plan.moves}
