"""Hotspot relief against the exact optimum (ILP, bench/exact.py) on clusters up to 12 hosts / 60 VMs."""

from __future__ import annotations

import pytest

from balancer.model import PlannerState
from balancer.policy import PlanArgs, plan
from balancer.policy.args import PolicyArgs
from balancer.reasons import Reason
from bench.exact import optimum, random_instance
from tests.policy.oracle import apply, usable, used

# no balance moves (a 100 % cut is never reached) and no budget: the exact problem has neither
ARGS = PlanArgs(policy=PolicyArgs(max_moves_per_tick=1000, min_improvement=1.0, min_overload_cut=1.0))
SEEDS = range(20)


def instance(seed: int):  # type: ignore[no-untyped-def]
    """4-12 hosts, 20-60 VMs, 1-3 hot hosts over both marks, the others 40-85 % full."""
    return random_instance(seed, 4 + seed % 9, 20 + (seed * 7) % 41, hot=1 + seed % 3, fill=(0.4, 0.85))


@pytest.mark.parametrize("seed", SEEDS)
def test_hotspot_bytes_within_ten_percent_of_the_optimum(seed: int) -> None:
    snap = instance(seed)
    exact = optimum(snap, PlannerState(), ARGS, 0.0, limit_s=60)
    p = plan(snap, PlannerState(), ARGS, 0.0)
    ours = [m for m in p.moves if m.reason == Reason.HOTSPOT]
    if exact.status != "optimal":
        pytest.skip(f"exact solver: {exact.status}")
    assert not [s for s in p.skips if s.subject == "host" and s.reason == Reason.NO_FIT], p.skips
    assert p.overloaded_after == ()
    total = sum(m.cost.total_bytes for m in ours)
    assert total <= exact.bytes * 1.10 + 1, (total / exact.bytes, ours, exact.moves)
    # and the plan is executable: every target under its marks at its turn
    cap, cur = usable(snap, ARGS), snap
    for m in ours:
        cur = apply(cur, [m])
        u = used(cur, PlannerState())[m.target]
        assert u[0] <= 0.8 * cap[m.target][0] + 1e-9 and u[1] <= 0.85 * cap[m.target][1] + 1


@pytest.mark.parametrize("seed", range(6))
def test_drain_bytes_within_ten_percent_of_the_optimum(seed: int) -> None:
    snap = random_instance(seed, 6 + seed, 30 + 5 * seed, kind="drain", hot=1)
    exact = optimum(snap, PlannerState(), ARGS, 0.0, limit_s=60)
    p = plan(snap, PlannerState(), ARGS, 0.0)
    if exact.status != "optimal":
        pytest.skip(f"exact solver: {exact.status}")
    drained = [m for m in p.moves if m.reason == Reason.DRAIN]
    assert len(drained) == len(exact.moves)
    assert sum(m.cost.total_bytes for m in drained) <= exact.bytes * 1.10 + 1
