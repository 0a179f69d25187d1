"""SimExecutor: the real admission limits hold at every instant, migrations last bytes ÷ cap, pre-checks."""

from __future__ import annotations

import numpy as np
import pytest

from balancer.executor.args import LimitArgs
from balancer.metrics.collector import Collector
from balancer.model import MigrationRecord, Move, MoveCost, MoveState, PlannerState
from balancer.policy import PlanArgs, plan
from balancer.reasons import Reason
from balancer.sim import cluster as cluster_mod
from balancer.sim.args import SimArgs
from balancer.sim.cluster import MIB, SimCluster
from balancer.sim.executor import SimExecutor
from balancer.sim.source import SimSource
from balancer.sim.trace import Trace

ROOMY = LimitArgs.model_validate(  # every move of a test is admitted at once: pre-checks decide
    {"global": 10, "per_source": 5, "per_target": 5, "host_bandwidth_mib_s": 1000}
)


def move(c: SimCluster, v: int, target: int, reason: Reason = Reason.BALANCE) -> Move:
    cost = MoveCost(disk_bytes=int(c.overlay[v]), backing_bytes=0, memory_bytes=int(c.memory[v]), seconds=0.0)
    return Move(c.vm_names[v], c.host_names[int(c.placement[v])], c.host_names[target], reason, cost)


def storm(c: SimCluster, n: int, seed: int) -> list[Move]:
    """``n`` moves of distinct VMs to random other hosts (seeded)."""
    rng = np.random.default_rng(seed)
    vms = rng.choice(c.n_vms, n, replace=False)
    return [move(c, int(v), int((c.placement[v] + rng.integers(1, c.n_hosts)) % c.n_hosts)) for v in vms]


def busy_at(records: list[MigrationRecord], t: float) -> list[MigrationRecord]:
    return [
        r
        for r in records
        if r.state == MoveState.SUCCEEDED and (r.started_at or 0.0) <= t < (r.finished_at or 0.0)
    ]


@pytest.mark.parametrize(
    "limits",
    [
        LimitArgs.model_validate({}),  # 1/1, global min(5, H/2), 100 MiB/s each, 200 per host
        LimitArgs.model_validate(
            {
                "global": 6,
                "per_source": 2,
                "per_target": 3,
                "bandwidth_mib_s": 100,
                "host_bandwidth_mib_s": 250,
            }
        ),
    ],
)
def test_limits_hold_at_every_instant(trace: Trace, small: SimArgs, limits: LimitArgs) -> None:
    c = cluster_mod.build(small.model_copy(update={"host_memory_gib": 1024.0}), trace)
    ex = SimExecutor(c, limits)
    ex.submit(storm(c, 40, seed=3))
    c.advance(c.t0 + 86400.0)
    records = ex.finished
    assert len(records) == 40 and all(r.state == MoveState.SUCCEEDED for r in records)
    cap, budget = limits.global_limit(c.n_hosts), limits.host_bandwidth_mib_s
    for t in sorted({r.started_at or 0.0 for r in records}):
        now = busy_at(records, t)
        assert len(now) <= cap
        for h in c.host_names:
            assert sum(r.source == h for r in now) <= limits.per_source
            assert sum(r.target == h for r in now) <= limits.per_target
            assert sum(r.bandwidth_mib_s for r in now if h in (r.source, r.target)) <= budget
    assert max(len(busy_at(records, r.started_at or 0.0)) for r in records) >= min(
        cap, 2
    )  # limits, not serial


def test_a_migration_lasts_its_bytes_over_the_cap(trace: Trace, small: SimArgs) -> None:
    c = cluster_mod.build(small, trace)
    limits = LimitArgs.model_validate({"bandwidth_mib_s": 80})
    ex = SimExecutor(c, limits)
    ex.submit(storm(c, 10, seed=5))
    c.advance(c.t0 + 86400.0)
    for r in ex.finished:
        assert r.bandwidth_mib_s == 80
        total = r.disk_bytes + r.backing_bytes + r.memory_bytes
        assert (r.finished_at or 0.0) - (r.started_at or 0.0) == pytest.approx(total / (80 * MIB))
        v, t = c.vm_index[r.vm], c.host_index[r.target]
        assert c.placement[v] == t and c.present[t, c.image[v]]  # the VM and its backing image arrived


def test_the_executed_bytes_are_the_planners_prediction(trace: Trace, small: SimArgs) -> None:
    c = cluster_mod.build(small, trace)
    ex = SimExecutor(c, LimitArgs.model_validate({}))
    collector = Collector(SimSource(c))
    for k in range(8):
        snap = collector.tick(c.t0 + 300.0 * k)
    moves = plan(snap, PlannerState(), PlanArgs(), c.now).moves
    assert moves
    ex.submit(moves[:1])
    c.advance(c.now + 86400.0)
    (rec,) = ex.finished
    m = moves[0]
    assert (rec.disk_bytes, rec.backing_bytes, rec.memory_bytes) == (
        m.cost.disk_bytes,
        m.cost.backing_bytes,
        m.cost.memory_bytes,
    )
    assert (rec.finished_at or 0.0) - (rec.started_at or 0.0) == pytest.approx(m.cost.seconds)


def test_overhead_on_both_hosts_while_migrating(trace: Trace, small: SimArgs) -> None:
    c = cluster_mod.build(small, trace)
    ex = SimExecutor(c, LimitArgs.model_validate({}))
    target = (int(c.placement[0]) + 1) % c.n_hosts
    before = c.host_cores()
    ex.submit([move(c, 0, target)])
    during = c.host_cores()
    assert during[target] - before[target] == pytest.approx(small.migration_overhead_cores)
    src = int(c.placement[0])
    assert during[src] - before[src] == pytest.approx(small.migration_overhead_cores)
    assert c.migrating[0] and ex.in_flight()
    c.advance(c.now + 86400.0)
    assert not c.migrating[0] and c.host_overhead.sum() == 0 and c.vm_overhead.sum() == 0


def test_the_executors_prechecks_skip_a_stale_move_and_fail_without_memory(
    trace: Trace, small: SimArgs
) -> None:
    c = cluster_mod.build(small, trace)
    ex = SimExecutor(c, ROOMY)
    stale = move(c, 0, (int(c.placement[0]) + 1) % c.n_hosts)
    stale = Move(
        stale.vm, c.host_names[(int(c.placement[0]) + 2) % c.n_hosts], stale.target, stale.reason, stale.cost
    )
    full = int(np.argmax(c.host_memory_used()))
    big = [v for v in range(1, c.n_vms) if c.placement[v] != full][:5]
    c.host_memory[full] = int(c.host_memory_used()[full])  # the target has no memory left at all
    ex.submit([stale, *(move(c, v, full) for v in big)])
    c.advance(c.now + 86400.0)
    by_vm = {r.vm: r for r in ex.finished}
    # run_prechecks' skip for a VM its source no longer has (the simulator's own copy said vm_not_on_source)
    assert by_vm[stale.vm].state == MoveState.ABORTED and by_vm[stale.vm].outcome == Reason.VM_NOT_FOUND
    assert f"is not on {stale.source} any more" in by_vm[stale.vm].detail
    for v in big:
        r = by_vm[c.vm_names[v]]
        assert r.state == MoveState.FAILED and r.outcome == Reason.TARGET_NO_MEMORY
        assert c.placement[v] != full
    assert {p.succeeded for p in ex.recent(0.0)} == {False}


def test_a_vm_already_migrating_is_skipped_in_flight_and_a_full_disk_fails(
    trace: Trace, small: SimArgs
) -> None:
    c = cluster_mod.build(small, trace)
    ex = SimExecutor(c, ROOMY)
    src = int(c.placement[0])
    ex.submit([move(c, 0, (src + 1) % c.n_hosts)])
    assert c.migrating[0]
    ex.submit([move(c, 0, (src + 2) % c.n_hosts)])  # the same VM again, while it migrates
    nodisk = (src + 3) % c.n_hosts
    other = next(v for v in range(1, c.n_vms) if c.placement[v] not in (src, nodisk))
    c.host_disk[nodisk] = c.disk_used()[nodisk] + c.overlay[other] - 1  # one byte short of the overlay
    ex.submit([move(c, other, nodisk)])
    c.advance(c.now + 86400.0)
    again, full = ex.finished[0], next(r for r in ex.finished if r.vm == c.vm_names[other])
    assert (again.vm, again.state, again.outcome) == (c.vm_names[0], MoveState.ABORTED, Reason.IN_FLIGHT)
    assert (full.state, full.outcome) == (MoveState.FAILED, Reason.TARGET_NO_DISK)
    assert c.placement[other] != nodisk
