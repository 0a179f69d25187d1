"""Hotspot relief: only persisted overloads, cheapest set of VMs, targets stay under their marks."""

from __future__ import annotations

from balancer.model import PlannerState
from balancer.policy import PlanArgs, plan
from balancer.policy.args import PolicyArgs, ThresholdArgs
from balancer.reasons import Reason
from tests.builders import GIB, NOW, backing, disk, host, snapshot, vm

NO_BALANCE = PolicyArgs(min_improvement=1.0, min_overload_cut=1.0, max_moves_per_tick=100)


def hot_cluster(history: tuple[float, ...]) -> tuple:  # type: ignore[type-arg]
    # h1: 15 of 16 cores used (mark 12.8): 2.2 cores must leave
    vms = [
        vm("big", "h1", cpu_cores=6.0, memory_bytes=2 * GIB, disks=(disk(allocated_bytes=40 * GIB),)),
        vm("a", "h1", cpu_cores=1.5, memory_bytes=GIB, disks=(disk(allocated_bytes=2 * GIB),)),
        vm("b", "h1", cpu_cores=1.0, memory_bytes=GIB, disks=(disk(allocated_bytes=2 * GIB),)),
        vm("c", "h1", cpu_cores=3.0, memory_bytes=8 * GIB, disks=(disk(allocated_bytes=30 * GIB),)),
        vm("d", "h1", cpu_cores=3.5, memory_bytes=GIB, disks=(disk(allocated_bytes=20 * GIB),)),
    ]
    return snapshot([host("h1", cpu_history=history), host("h2"), host("h3")], vms)


def test_relieves_a_persisted_overload_with_the_cheapest_set() -> None:
    p = plan(hot_cluster((15.0,) * 3), PlannerState(), PlanArgs(policy=NO_BALANCE), NOW)
    moved = sorted(m.vm for m in p.moves)
    assert moved == ["a", "b"]  # 2.5 cores for 2 × 7 GiB; any single VM with ≥ 2.2 cores costs more
    assert all(m.reason == Reason.HOTSPOT and m.detail.startswith("relieve h1: cpu") for m in p.moves)
    assert p.overloaded_before == ("h1",) and p.overloaded_after == ()
    assert p.moves[-1].source_load.after["cpu"] <= 0.8


def test_overload_that_has_not_persisted_is_only_reported() -> None:
    for history in [(), (15.0, 15.0), (15.0, 11.0, 15.0)]:
        p = plan(hot_cluster(history), PlannerState(), PlanArgs(policy=NO_BALANCE), NOW)
        assert p.moves == ()
        (skip,) = [s for s in p.skips if s.subject == "host"]
        assert skip.name == "h1" and skip.reason == Reason.NOT_PERSISTED
    longer = PlanArgs(policy=NO_BALANCE, thresholds=ThresholdArgs(hold_ticks=5))
    assert plan(hot_cluster((15.0,) * 4), PlannerState(), longer, NOW).moves == ()


def test_relief_is_complete_whatever_the_balance_budget() -> None:
    for budget in (0, 1):
        args = PlanArgs(
            policy=PolicyArgs(min_improvement=1.0, min_overload_cut=1.0, max_moves_per_tick=budget)
        )
        p = plan(hot_cluster((15.0,) * 3), PlannerState(), args, NOW)
        # the cheapest cover (a + b) takes 2 moves: the budget is balance's only
        assert sorted((m.vm, m.reason) for m in p.moves) == [("a", Reason.HOTSPOT), ("b", Reason.HOTSPOT)]
        assert p.overloaded_after == ()
        assert not [s for s in p.skips if s.reason == Reason.BUDGET_SPENT and s.subject == "host"]


def test_prefers_targets_holding_the_backing_file() -> None:
    rare = backing("/images/_base/rare.qcow2", 20 * GIB)
    snap = snapshot(
        [host("h1", cpu_history=(15.0,) * 3), host("h2"), host("h3", backing_files=(rare.path,))],
        [
            vm("x", "h1", cpu_cores=3.0, disks=(disk(backing_files=(rare,)),)),
            vm("y", "h1", cpu_cores=12.0, disks=(disk(allocated_bytes=100 * GIB),)),
        ],
    )
    (m,) = plan(snap, PlannerState(), PlanArgs(policy=NO_BALANCE), NOW).moves
    assert (m.vm, m.target, m.cost.backing_bytes) == ("x", "h3", 0)


def test_host_that_cannot_be_relieved_is_explained() -> None:
    snap = snapshot(
        [host("h1", cpu_history=(15.0,) * 3), host("h2", cpus=4.0)],
        [vm("x", "h1", cpu_cores=15.0)],
    )
    p = plan(snap, PlannerState(), PlanArgs(policy=NO_BALANCE), NOW)
    assert p.moves == ()
    reasons = {(s.subject, s.name): s.reason for s in p.skips}
    assert reasons[("host", "h1")] == Reason.NO_FIT
    assert reasons[("vm", "x")] == Reason.NO_CPU


def test_memory_overload_and_both_at_once() -> None:
    snap = snapshot(
        [host("h1", cpu_history=(14.0,) * 3, memory_history=(60 * GIB,) * 3), host("h2"), host("h3")],
        [
            vm("m1", "h1", cpu_cores=0.5, memory_bytes=24 * GIB),
            vm("m2", "h1", cpu_cores=0.5, memory_bytes=12 * GIB),
            vm("c1", "h1", cpu_cores=6.0, memory_bytes=2 * GIB),
            vm("c2", "h1", cpu_cores=7.0, memory_bytes=22 * GIB),
        ],
    )
    p = plan(snap, PlannerState(), PlanArgs(policy=NO_BALANCE), NOW)
    assert p.overloaded_after == ()
    assert "h1" not in {m.target for m in p.moves}
