"""Make-room chains: a VM that must leave and fits nowhere gets room made first (reason make_room)."""

from __future__ import annotations

from balancer.model import HostState, PlannerState
from balancer.policy import PlanArgs, plan
from balancer.policy.args import PolicyArgs
from balancer.reasons import Reason
from tests.builders import GIB, NOW, disk, host, snapshot, vm
from tests.policy.oracle import apply, usable, used

NO_BALANCE = PlanArgs(policy=PolicyArgs(min_improvement=1.0, min_overload_cut=1.0))


def stuck_hot_host():  # type: ignore[no-untyped-def]
    """h1 (8 cores, mark 6.4) holds one VM of 7 cores: it must leave, and neither t1 nor t2 has 7 cores
    free under its mark (12.8) until small VMs leave t1 (cheap ones) or t2 (dear ones)."""
    return snapshot(
        [host("h1", cpus=8.0, cpu_history=(7.0,)), host("t1"), host("t2"), host("spare", cpus=8.0)],
        [
            vm("big", "h1", cpu_cores=7.0, disks=(disk(allocated_bytes=10 * GIB),)),
            vm("s1", "t1", cpu_cores=3.0, disks=(disk(allocated_bytes=2 * GIB),)),
            vm("s2", "t1", cpu_cores=3.0, disks=(disk(allocated_bytes=2 * GIB),)),
            vm("d1", "t2", cpu_cores=3.0, disks=(disk(allocated_bytes=40 * GIB),)),
            vm("d2", "t2", cpu_cores=3.0, disks=(disk(allocated_bytes=40 * GIB),)),
        ],
    )


def test_relief_makes_room_with_the_cheapest_moves_first() -> None:
    snap = stuck_hot_host()
    p = plan(
        snap,
        PlannerState(),
        PlanArgs(
            policy=NO_BALANCE.policy, thresholds=NO_BALANCE.thresholds.model_copy(update={"hold_ticks": 1})
        ),
        NOW,
    )
    # one cheap VM off t1 (2 GiB, not 40) to t2, where it fits tightest; then big onto t1
    assert [(m.vm, m.source, m.target, m.reason) for m in p.moves] == [
        ("s1", "t1", "t2", Reason.MAKE_ROOM),
        ("big", "h1", "t1", Reason.HOTSPOT),
    ]
    assert "makes room on t1 for big (relief of h1)" in p.moves[0].detail
    assert p.moves[1].after == ("s1",)  # lands once s1 has left: t1 never over its cpu mark
    assert p.moves[0].flags == (Reason.HOTSPOT,)
    assert p.overloaded_after == ()
    # every target within its marks at its turn
    cap, cur = usable(snap, NO_BALANCE), snap
    for m in p.moves:
        cur = apply(cur, [m])
        assert used(cur, PlannerState())[m.target][0] <= 0.8 * cap[m.target][0] + 1e-9


def test_without_room_anywhere_the_host_says_why() -> None:
    snap = stuck_hot_host()
    args = PlanArgs(
        policy=NO_BALANCE.policy,
        thresholds=NO_BALANCE.thresholds.model_copy(update={"hold_ticks": 1}),
        rules=NO_BALANCE.rules.model_copy(update={"exclude_vms": ("s*", "d*")}),
    )
    p = plan(snap, PlannerState(), args, NOW)
    assert p.moves == ()
    reasons = {(s.subject, s.name): s.reason for s in p.skips}
    assert reasons[("host", "h1")] == Reason.NO_FIT and reasons[("vm", "big")] == Reason.NO_CPU


def test_a_drain_leaves_relief_the_room_it_needs() -> None:
    # d (draining) holds a 5-core VM that t1 or t2 serve at the same cost; h1 is hot with a 7-core VM
    # only t1 can take (mark 8 cores). Drained first onto t1 (least imbalance), relief would fail;
    # planned together, h1 is relieved and the drain goes elsewhere.
    snap = snapshot(
        [
            host("d", state=HostState.DRAINING, cpus=16.0),
            host("h1", cpus=8.0, cpu_history=(7.0,)),
            host("t1", cpus=10.0),
            host("t2", cpus=8.0),
        ],
        [
            vm("mover", "d", cpu_cores=5.0, disks=(disk(allocated_bytes=5 * GIB),)),
            vm("hot", "h1", cpu_cores=7.0, disks=(disk(allocated_bytes=5 * GIB),)),
        ],
    )
    args = PlanArgs(
        policy=NO_BALANCE.policy, thresholds=NO_BALANCE.thresholds.model_copy(update={"hold_ticks": 1})
    )
    p = plan(snap, PlannerState(), args, NOW)
    where = {m.vm: (m.target, m.reason) for m in p.moves}
    assert where["hot"] == ("t1", Reason.HOTSPOT)
    assert where["mover"][1] == Reason.DRAIN and where["mover"][0] != "t1"  # t2, or h1 once relieved
    assert p.overloaded_after == ()
