"""A standing proposal (recommend mode) is kept while it is as good as a fresh plan, so noise between two
near-equal choices does not replace the proposal an operator is reviewing; anything that no longer
stands, or a plan better by more than the planner's own margins, replaces it."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings

from balancer.model import Move, Plan, PlannerState, Snapshot
from balancer.policy import PlanArgs, plan
from balancer.policy.args import PolicyArgs
from balancer.reasons import Reason
from tests.builders import GIB, NOW, disk, host, snapshot, vm
from tests.policy.oracle import apply, usable, used
from tests.policy.strategies import Case, cases
from tests.policy.test_room import stuck_hot_host

NO_BALANCE = PlanArgs(policy=PolicyArgs(min_improvement=1.0, min_overload_cut=1.0))


def hot(cores: dict[str, float], big: bool = False, others: tuple[float, float] = (1.0, 1.0)) -> Snapshot:
    """h1 runs 15 of 16 cores (mark 12.8): one VM of about 2.5 cores must leave; h2 and h3 run one small
    VM each, of ``others`` cores."""
    rest = 15.0 - sum(cores.values())
    vms = [vm("base", "h1", cpu_cores=rest, memory_bytes=2 * GIB, disks=(disk(allocated_bytes=60 * GIB),))]
    for name, c in cores.items():
        size = 30 * GIB if big and name == "y" else 2 * GIB
        vms.append(vm(name, "h1", cpu_cores=c, memory_bytes=GIB, disks=(disk(allocated_bytes=size),)))
    for name, c in zip(("h2", "h3"), others, strict=True):
        vms.append(vm(f"on-{name}", name, cpu_cores=c, memory_bytes=GIB, disks=(disk(allocated_bytes=GIB),)))
    return snapshot([host("h1", cpu_history=(15.0,) * 3), host("h2"), host("h3")], vms)


def key(p: Plan | tuple[Move, ...]) -> list[tuple[str, str, str, Reason]]:
    moves = p.moves if isinstance(p, Plan) else p
    return [(m.vm, m.source, m.target, m.reason) for m in moves]


def test_noise_between_two_equal_choices_keeps_the_standing_proposal() -> None:
    first = plan(hot({"x": 2.50, "y": 2.48}, others=(1.00, 1.02)), PlannerState(), NO_BALANCE, NOW)
    (chosen,) = first.moves
    assert (chosen.reason, chosen.target) == (Reason.HOTSPOT, "h2")  # the less loaded of two equal targets
    # next tick the two targets' measured loads swap by a few hundredths of a core
    swapped = hot({"x": 2.50, "y": 2.48}, others=(1.02, 1.00))
    fresh = plan(swapped, PlannerState(), NO_BALANCE, NOW)
    assert key(fresh) != key(first), "the scenario must flip a fresh plan, or it tests nothing"
    kept = plan(swapped, PlannerState(standing=first.moves), NO_BALANCE, NOW)
    assert key(kept) == key(first)
    assert kept.overloaded_after == ()


def test_a_standing_move_that_no_longer_stands_is_replaced() -> None:
    first = plan(hot({"x": 2.50, "y": 2.48}), PlannerState(), NO_BALANCE, NOW)
    (chosen,) = first.moves
    gone = hot({"x": 2.50, "y": 2.48})
    gone = replace(gone, vms=tuple(v for v in gone.vms if v.name != chosen.vm))  # the VM went away
    fresh = plan(gone, PlannerState(), NO_BALANCE, NOW)
    assert key(plan(gone, PlannerState(standing=first.moves), NO_BALANCE, NOW)) == key(fresh)
    moved = hot({"x": 2.50, "y": 2.48})
    moved = replace(  # an operator moved it elsewhere meanwhile
        moved, vms=tuple(replace(v, host="h3") if v.name == chosen.vm else v for v in moved.vms)
    )
    assert key(plan(moved, PlannerState(standing=first.moves), NO_BALANCE, NOW)) == key(
        plan(moved, PlannerState(), NO_BALANCE, NOW)
    )


def test_a_fresh_plan_cheaper_by_more_than_the_margin_replaces_the_proposal() -> None:
    snap = hot({"x": 2.50, "y": 2.48}, big=True)  # y now copies 30 GiB of disk, x 2 GiB
    fresh = plan(snap, PlannerState(), NO_BALANCE, NOW)
    assert [m.vm for m in fresh.moves] == ["x"]
    standing = (replace(fresh.moves[0], vm="y"),)
    assert key(plan(snap, PlannerState(standing=standing), NO_BALANCE, NOW)) == key(fresh)


def test_a_standing_move_that_relieves_too_little_is_completed_or_replaced() -> None:
    snap = hot({"x": 2.50, "small": 0.5})
    fresh = plan(snap, PlannerState(), NO_BALANCE, NOW)
    standing = (Move("small", "h1", "h2", Reason.HOTSPOT, fresh.moves[0].cost),)
    p = plan(snap, PlannerState(standing=standing), NO_BALANCE, NOW)
    assert p.overloaded_after == ()  # never a proposal that leaves the host hot


def _jittered(case: Case, seed: int) -> Case:
    rng = random.Random(seed)
    vms = tuple(replace(v, cpu_cores=v.cpu_cores * rng.uniform(0.97, 1.03)) for v in case.snap.vms)
    return replace(case, snap=replace(case.snap, vms=vms))


@settings(max_examples=60, deadline=None)
@given(cases())
def test_with_any_standing_proposal_the_plan_still_keeps_every_target_under_its_marks(case: Case) -> None:
    # the proposal a tick before, on loads a few percent apart, stands now
    before = plan(_jittered(case, 1).snap, case.state, case.args, NOW)
    standing = tuple(m for m in before.moves if m.reason != Reason.DRAIN)
    p = plan(case.snap, replace(case.state, standing=standing), case.args, NOW)
    fresh = plan(case.snap, case.state, case.args, NOW)
    assert len(p.overloaded_after) <= len(fresh.overloaded_after)
    th, cap, cur = case.args.thresholds, usable(case.snap, case.args), case.snap
    for m in p.moves:
        assert m.target not in case.state.draining
        cur = apply(cur, [m])
        use = used(cur, case.state, case.args.policy.cpu_burst_sigmas)[m.target]
        assert use[0] <= th.cpu_high * cap[m.target][0] * (1 + 1e-9) + 1e-9
        assert use[1] <= th.memory_high * cap[m.target][1] * (1 + 1e-9) + 1


def test_a_kept_relief_move_still_waits_for_the_room_made_for_it() -> None:
    snap = stuck_hot_host()
    args = PlanArgs(
        policy=NO_BALANCE.policy, thresholds=NO_BALANCE.thresholds.model_copy(update={"hold_ticks": 1})
    )
    fresh = plan(snap, PlannerState(), args, NOW)
    assert [(m.vm, m.reason, m.after) for m in fresh.moves] == [
        ("s1", Reason.MAKE_ROOM, ()),
        ("big", Reason.HOTSPOT, ("s1",)),
    ]
    kept = plan(snap, PlannerState(standing=fresh.moves), args, NOW)
    assert [(m.vm, m.target, m.after, m.flags) for m in kept.moves] == [
        (m.vm, m.target, m.after, m.flags) for m in fresh.moves
    ]  # big lands on t1 only once s1 has left it: t1 never over its CPU mark


@settings(max_examples=40, deadline=None)
@given(cases())
def test_its_own_proposal_standing_changes_nothing(case: Case) -> None:
    fresh = plan(case.snap, case.state, case.args, NOW)
    standing = tuple(m for m in fresh.moves if m.reason != Reason.DRAIN)
    again = plan(case.snap, replace(case.state, standing=standing), case.args, NOW)
    assert key(again) == key(fresh)
    assert [(m.after, m.flags) for m in again.moves] == [(m.after, m.flags) for m in fresh.moves]
