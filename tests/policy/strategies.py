"""Hypothesis strategies: small random clusters with every kind of host, VM, rule and history."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import strategies as st

from balancer.model import VM, HostState, Move, MoveCost, PastMove, PlannerState, Snapshot, VMTags
from balancer.policy import PlanArgs
from balancer.policy.args import AffinityRule, LabelRule, PinRule, PolicyArgs, RulesArgs, ThresholdArgs
from balancer.reasons import Reason
from tests.builders import GIB, MIB, NOW, backing, disk, host, snapshot, vm

BASES = tuple(backing(f"/images/_base/b{i}.qcow2", (i + 1) * GIB) for i in range(3))
STATES = [HostState.UP] * 10 + [HostState.DOWN, HostState.MAINTENANCE, HostState.DRAINING]


@dataclass(frozen=True)
class Case:
    snap: Snapshot
    state: PlannerState
    args: PlanArgs


@st.composite
def cases(
    draw: st.DrawFn, max_hosts: int = 6, max_vms: int = 18, rules: bool = True, budget: int | None = None
) -> Case:
    n_h = draw(st.integers(2, max_hosts))
    names = [f"h{i}" for i in range(n_h)]
    vms: list[VM] = []
    for i in range(draw(st.integers(0, max_vms))):
        base = draw(st.sampled_from(BASES))
        vms.append(
            vm(
                f"v{i:02d}",
                draw(st.sampled_from(names)),
                state=draw(st.sampled_from(["running"] * 8 + ["shutoff", "paused"])),
                cpu_cores=draw(st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0, 5.0])),
                cpu_std_cores=draw(st.sampled_from([0.0, 0.0, 0.25, 1.0])),
                memory_bytes=draw(st.sampled_from([1, 2, 4, 8, 12])) * GIB,
                dirty_rate_bytes_s=draw(st.sampled_from([0.0] * 4 + [20.0, 150.0])) * MIB,
                disks=(disk(allocated_bytes=draw(st.integers(1, 40)) * GIB, backing_files=(base,)),),
                migrating=draw(st.sampled_from([False] * 12 + [True])),
                tags=VMTags(
                    exclude=draw(st.sampled_from([False] * 12 + [True])),
                    groups=draw(st.sampled_from([()] * 5 + [("g1",), ("g2",)])) if rules else (),
                    pin_hosts=draw(st.sampled_from([()] * 10 + [(names[0],), tuple(names[:2])]))
                    if rules
                    else (),
                ),
            )
        )
    used = {n: [0.0, 0.0] for n in names}
    for v in vms:
        used[v.host][0] += v.cpu_cores  # a host's history sums its VMs' means
        used[v.host][1] += v.memory_bytes
    hosts = []
    for n in names:
        hot = draw(st.sampled_from([True, True, True, False]))
        hosts.append(
            host(
                n,
                state=draw(st.sampled_from(STATES)),
                cpus=float(draw(st.sampled_from([4, 8, 16]))),
                memory_bytes=draw(st.sampled_from([16, 24, 48])) * GIB,
                disk_capacity_bytes=draw(st.sampled_from([0, 0, 200 * GIB, 400 * GIB])),
                labels={"zone": draw(st.sampled_from(["a", "b"]))},
                backing_files=tuple(b.path for b in BASES if draw(st.booleans())),
                cpu_history=(used[n][0],) * 3 if hot else (),
                memory_history=(used[n][1],) * 3 if hot else (),
            )
        )
    snap = snapshot(hosts, vms)
    rule_args = RulesArgs()
    if rules and len(vms) >= 2:
        pick = st.sampled_from([v.name for v in vms])
        rule_args = RulesArgs(
            anti_affinity=tuple(
                AffinityRule(name="anti", vms=(draw(pick), draw(pick)))
                for _ in range(draw(st.integers(0, 1)))
            ),
            affinity=tuple(
                AffinityRule(name="aff", vms=(draw(pick), draw(pick))) for _ in range(draw(st.integers(0, 1)))
            ),
            pins=tuple(
                PinRule(vm=draw(pick), hosts=(draw(st.sampled_from(names)),))
                for _ in range(draw(st.integers(0, 1)))
            ),
            host_labels=(LabelRule(vms=("v0*",), labels={"zone": "a"}, required=draw(st.booleans())),),
            exclude_vms=draw(st.sampled_from([(), ("v1[67]",)])),
            exclude_hosts=draw(st.sampled_from([(), (names[-1],)])),
        )
        rule_args = replace_dupes(rule_args)
    in_flight: tuple[Move, ...] = ()
    recent: tuple[PastMove, ...] = ()
    if vms and draw(st.booleans()):
        v = draw(st.sampled_from(vms))
        in_flight = (
            Move(v.name, v.host, draw(st.sampled_from(names)), Reason.BALANCE, MoveCost(0, 0, 0, 0.0)),
        )
    if vms and draw(st.booleans()):
        v = draw(st.sampled_from(vms))
        recent = (
            PastMove(
                v.name,
                draw(st.sampled_from(names)),
                v.host,
                NOW - draw(st.integers(60, 20000)),
                draw(st.booleans()),
            ),
        )
    draining = frozenset(draw(st.lists(st.sampled_from(names), max_size=1)))
    args = PlanArgs(
        thresholds=ThresholdArgs(
            cpu_reserve_cores=draw(st.sampled_from([0.0, 1.0])),
            memory_reserve_mib=draw(st.sampled_from([0, 1024])),
        ),
        policy=PolicyArgs(
            max_moves_per_tick=budget if budget is not None else draw(st.integers(0, 6)),
            balance_objective=draw(st.sampled_from(["overload", "imbalance"])),
            min_improvement=draw(st.sampled_from([0.0, 0.05, 0.1])),
            min_overload_cut=draw(st.sampled_from([0.0, 0.03, 0.1])),
            memory_weight=draw(st.sampled_from([1.0, 2.0])),
            cpu_burst_sigmas=draw(st.sampled_from([0.0, 0.5, 1.0])),
        ),
        rules=rule_args,
    )
    return Case(snap, PlannerState(draining=draining, in_flight=in_flight, recent=recent), args)


def replace_dupes(rules: RulesArgs) -> RulesArgs:
    """Drop rules that name the same VM twice (not a group)."""
    return replace_model(
        rules,
        anti_affinity=tuple(r for r in rules.anti_affinity if len(set(r.vms)) > 1),
        affinity=tuple(r for r in rules.affinity if len(set(r.vms)) > 1),
    )


def replace_model(model: RulesArgs, **kw: object) -> RulesArgs:
    return model.model_copy(update=kw)


@st.composite
def tight_drains(draw: st.DrawFn) -> Case:
    """Memory-tight clusters where moves may have to wait for room: h0 drains onto 2-3 small hosts
    (16-24 GiB) that hold 4-12 VMs of 2-8 GiB between them, while up to 3 of their VMs are migrating
    away (in flight) and others may be planned away by the same plan."""
    n_h = draw(st.integers(3, 4))
    names = [f"h{i}" for i in range(n_h)]
    vms: list[VM] = []
    for i in range(draw(st.integers(4, 12))):
        vms.append(
            vm(
                f"v{i:02d}",
                draw(st.sampled_from(names)),
                cpu_cores=draw(st.sampled_from([0.25, 0.5, 1.0])),
                memory_bytes=draw(st.sampled_from([2, 4, 6, 8])) * GIB,
                disks=(disk(allocated_bytes=draw(st.integers(1, 8)) * GIB, backing_files=(BASES[0],)),),
            )
        )
    hosts = [host(n, memory_bytes=draw(st.sampled_from([16, 20, 24])) * GIB, backing_files=()) for n in names]
    movable = [v for v in vms if v.host != names[0]]
    flying = draw(st.lists(st.sampled_from(movable), max_size=3, unique=True)) if movable else []
    in_flight = tuple(
        Move(
            v.name,
            v.host,
            draw(st.sampled_from([n for n in names[1:] if n != v.host])),
            Reason.BALANCE,
            MoveCost(0, 0, 0, 0.0),
        )
        for v in flying
    )
    args = PlanArgs(
        policy=PolicyArgs(max_moves_per_tick=draw(st.integers(0, 3)), min_improvement=0.0),
    )
    state = PlannerState(draining=frozenset({names[0]}), in_flight=in_flight)
    return Case(snapshot(hosts, vms), state, args)


__all__ = ["Case", "cases", "replace", "tight_drains"]
