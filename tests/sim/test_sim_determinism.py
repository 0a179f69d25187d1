"""The simulator is deterministic for a seed: same cluster, same migrations, same figures."""

from __future__ import annotations

import numpy as np

from balancer.policy import plan
from balancer.sim import cluster as cluster_mod
from balancer.sim.args import SimArgs
from balancer.sim.run import run
from balancer.sim.trace import Trace


def test_same_seed_builds_the_same_cluster(trace: Trace, small: SimArgs) -> None:
    a, b = cluster_mod.build(small, trace), cluster_mod.build(small, trace)
    for name in ("placement", "vcpus", "memory", "overlay", "image", "dirty", "trace_rows"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.vm_uuids == b.vm_uuids


def test_another_seed_builds_another_cluster(trace: Trace, small: SimArgs) -> None:
    a = cluster_mod.build(small, trace)
    b = cluster_mod.build(small.model_copy(update={"seed": 2}), trace)
    assert not np.array_equal(a.placement, b.placement)
    assert not np.array_equal(a.trace_rows, b.trace_rows)


def test_initial_placement_keeps_memory_under_the_fill(trace: Trace, small: SimArgs) -> None:
    c = cluster_mod.build(small, trace)
    assert np.all(c.host_memory_used() <= small.placement_fill * c.host_memory)
    assert np.all(c.present[c.placement, c.image])  # each host holds its VMs' backing images


def test_a_run_repeats_exactly(trace: Trace, small: SimArgs) -> None:
    one = run(plan, small, trace, hours=2)
    two = run(plan, small, trace, hours=2)
    assert one.executor is not None and two.executor is not None
    assert one.executor.finished == two.executor.finished
    assert one.series == two.series
    drop = ("plan_seconds_mean", "plan_seconds_p95", "plan_seconds_max")
    assert {k: v for k, v in one.summary.items() if k not in drop} == {
        k: v for k, v in two.summary.items() if k not in drop
    }
    assert one.executor.finished, "the case should migrate something, or it tests little"
