"""Drain: every VM on a draining host gets a target or a Skip with its reason; moves run in order."""

from __future__ import annotations

from balancer.model import HostState, Move, MoveCost, PastMove, PlannerState
from balancer.policy import PlanArgs, plan
from balancer.policy.args import PolicyArgs, RulesArgs
from balancer.reasons import Reason
from tests.builders import GIB, NOW, host, snapshot, vm
from tests.policy.oracle import apply, used


def test_seed_scenario_drains_one_host_of_two() -> None:
    snap = snapshot(
        [host("a", state=HostState.DRAINING), host("b")],
        [vm("web", "a"), vm("db", "a", memory_bytes=8 * GIB), vm("cache", "b")],
    )
    p = plan(snap, PlannerState(), PlanArgs(), NOW)
    assert [(m.vm, m.source, m.target, m.reason) for m in p.moves] == [
        ("db", "a", "b", Reason.DRAIN),  # largest bytes to copy first
        ("web", "a", "b", Reason.DRAIN),
    ]
    assert all(m.detail.startswith("drain a:") for m in p.moves)
    assert not [s for s in p.skips if s.subject == "vm"]


def test_drain_named_in_state_and_not_capped_by_budget() -> None:
    snap = snapshot([host("a"), host("b"), host("c")], [vm(f"v{i}", "a", memory_bytes=GIB) for i in range(6)])
    args = PlanArgs(policy=PolicyArgs(max_moves_per_tick=1))
    p = plan(snap, PlannerState(draining=frozenset({"a"})), args, NOW)
    assert len(p.moves) == 6 and {m.target for m in p.moves} <= {"b", "c"}
    assert {m.target for m in p.moves} == {"b", "c"}  # least resulting imbalance spreads them


def test_vm_too_big_for_any_host_is_skipped_with_sizes_named() -> None:
    snap = snapshot(
        [host("a", state=HostState.DRAINING, memory_bytes=256 * GIB), host("b"), host("c")],
        [vm("huge", "a", memory_bytes=100 * GIB), vm("small", "a")],
    )
    p = plan(snap, PlannerState(), PlanArgs(), NOW)
    assert [m.vm for m in p.moves] == ["small"]
    (skip,) = [s for s in p.skips if s.subject == "vm"]
    assert skip.name == "huge" and skip.reason == Reason.NO_MEMORY
    assert "huge needs 100.0 GiB memory" in skip.detail
    assert skip.detail.endswith(
        "largest free under the mark on an eligible host is 54.4 GiB (c)"
    )  # 64 × 0.85, as the drain leaves things: b took "small"
    host_skip = next(s for s in p.skips if s.subject == "host" and s.name == "a")
    assert host_skip.reason == Reason.NO_MEMORY and "huge" in host_skip.detail


def test_swap_like_drain_moves_a_blocker_out_of_the_way_first() -> None:
    # B (40 GiB) fits only on t1 (54.4 GiB under the mark) once A (20 GiB) leaves it for t2,
    # and A is the only VM t2 can take.
    snap = snapshot(
        [host("d", state=HostState.DRAINING), host("t1"), host("t2", memory_bytes=32 * GIB)],
        [vm("B", "d", memory_bytes=40 * GIB), vm("A", "t1", memory_bytes=20 * GIB)],
    )
    p = plan(snap, PlannerState(), PlanArgs(), NOW)
    assert [(m.vm, m.source, m.target, m.reason) for m in p.moves] == [
        ("A", "t1", "t2", Reason.MAKE_ROOM),
        ("B", "d", "t1", Reason.DRAIN),
    ]
    assert "makes room on t1 for B (drain of d)" in p.moves[0].detail
    assert p.moves[0].flags == (Reason.DRAIN,)  # serves a drain: started without approval (recommend)
    # 20 + 40 GiB fit t1's 64 GiB, but not under its 54.4 GiB mark: B waits for A to leave
    assert p.moves[1].after == ("A",)
    # executable in order: each target within its mark at its turn
    state, cur = PlannerState(), snap
    for m in p.moves:
        cur = apply(cur, [m])
        mem = used(cur, state)[m.target][1]
        assert mem <= 0.85 * cur.host(m.target).memory_bytes


def test_blockers_are_reported_never_dropped() -> None:
    snap = snapshot(
        [host("a", state=HostState.DRAINING), host("b")],
        [
            vm("off", "a", state="shutoff"),
            vm("pinned", "a", tags=vm().tags.__class__(pin_hosts=("a",))),
            vm("excl", "a"),
            vm("failed", "a"),
            vm("cool", "a"),
            vm("moving", "a", migrating=True),
        ],
    )
    state = PlannerState(
        recent=(
            PastMove("failed", "b", "a", NOW - 600, succeeded=False),
            PastMove("cool", "b", "a", NOW - 600, succeeded=True),
        )
    )
    p = plan(snap, state, PlanArgs(rules=RulesArgs(exclude_vms=("ex*",))), NOW)
    reasons = {s.name: s.reason for s in p.skips if s.subject == "vm"}
    assert reasons == {
        "off": Reason.NOT_RUNNING,
        "pinned": Reason.PINNED,
        "excl": Reason.EXCLUDED,
        "failed": Reason.QUARANTINED,
        "moving": Reason.IN_FLIGHT,
    }
    # cooldown does not stop a drain; going back to the host it left is allowed when nothing else fits
    assert [(m.vm, m.target) for m in p.moves] == [("cool", "b")]


def test_drain_of_down_or_excluded_host_is_reported() -> None:
    snap = snapshot(
        [host("a", state=HostState.DOWN), host("b"), host("c")],
        [vm("v", "a"), vm("w", "b")],
    )
    state = PlannerState(draining=frozenset({"a", "b"}))
    p = plan(snap, state, PlanArgs(rules=RulesArgs(exclude_hosts=("b",))), NOW)
    assert p.moves == ()
    hosts = {s.name: s.reason for s in p.skips if s.subject == "host"}
    assert hosts == {"a": Reason.HOST_DOWN, "b": Reason.EXCLUDED}


def test_no_target_hosts() -> None:
    snap = snapshot(
        [host("a", state=HostState.DRAINING), host("m", state=HostState.MAINTENANCE)], [vm("v", "a")]
    )
    p = plan(snap, PlannerState(), PlanArgs(), NOW)
    (skip,) = [s for s in p.skips if s.subject == "vm"]
    assert skip.reason == Reason.NO_TARGET_HOSTS


def test_affinity_group_leaves_together() -> None:
    from balancer.policy.args import AffinityRule

    snap = snapshot(
        [host("a", state=HostState.DRAINING), host("b"), host("c")],
        [vm("app", "a"), vm("db", "a"), vm("other", "b", memory_bytes=8 * GIB)],
    )
    rules = RulesArgs(affinity=(AffinityRule(name="pair", vms=("app", "db")),))
    p = plan(snap, PlannerState(), PlanArgs(rules=rules), NOW)
    targets = {m.vm: m.target for m in p.moves}
    assert targets == {"app": "c", "db": "c"}
    assert all("with affinity group 'pair'" in m.detail for m in p.moves)


def test_a_move_that_needs_the_room_of_an_earlier_one_names_it_in_after() -> None:
    # As above, but B is 50 GiB: t1 holds B under its mark once A has gone, yet not while A is still
    # there (20 + 50 > 64 GiB), so the executor must not start B before A's migration ends.
    snap = snapshot(
        [host("d", state=HostState.DRAINING), host("t1"), host("t2", memory_bytes=32 * GIB)],
        [vm("B", "d", memory_bytes=50 * GIB), vm("A", "t1", memory_bytes=20 * GIB)],
    )
    p = plan(snap, PlannerState(), PlanArgs(), NOW)
    assert [(m.vm, m.target, m.after) for m in p.moves] == [("A", "t2", ()), ("B", "t1", ("A",))]


def test_room_freed_by_a_migration_in_flight_is_waited_for() -> None:
    # x is leaving h1 for h2 (in flight); y, drained off h3, fits only on h1 and only once x is gone.
    snap = snapshot(
        [host("h1"), host("h2"), host("h3", state=HostState.DRAINING)],
        [vm("x", "h1", memory_bytes=40 * GIB), vm("y", "h3", memory_bytes=40 * GIB)],
    )
    flying = (Move("x", "h1", "h2", Reason.BALANCE, MoveCost(0, 0, 0, 0.0)),)
    p = plan(snap, PlannerState(in_flight=flying), PlanArgs(), NOW)
    assert [(m.vm, m.source, m.target, m.after) for m in p.moves] == [("y", "h3", "h1", ("x",))]


def test_targets_keep_room_for_a_bursty_vms_spread() -> None:
    # x averages 2 cores but swings by 2. On its mean it fits h2 (10 + 2 ≤ 12.8, the 80 % mark of 16)
    # and h2 is the better-balanced choice (it evens out memory); with room for half its spread x
    # counts 3 cores, which h2 cannot take, so it goes to the larger h3.
    snap = snapshot(
        [
            host("h1", state=HostState.DRAINING),
            host("h2"),
            host("h3", cpus=32.0, memory_bytes=128 * GIB),
        ],
        [
            vm("x", "h1", cpu_cores=2.0, cpu_std_cores=2.0, memory_bytes=16 * GIB),
            vm("flat2", "h2", cpu_cores=10.0, memory_bytes=4 * GIB),
            vm("flat3", "h3", cpu_cores=20.0, memory_bytes=40 * GIB),
        ],
    )
    (on_mean,) = plan(snap, PlannerState(), PlanArgs(policy=PolicyArgs(cpu_burst_sigmas=0.0)), NOW).moves
    assert (on_mean.vm, on_mean.target) == ("x", "h2")
    (with_room,) = plan(snap, PlannerState(), PlanArgs(policy=PolicyArgs(cpu_burst_sigmas=0.5)), NOW).moves
    assert (with_room.vm, with_room.target) == ("x", "h3")
