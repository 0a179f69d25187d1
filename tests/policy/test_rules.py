"""Placement rules: pins, labels, anti-affinity (config, tags), affinity, cooldown, ping-pong, in flight."""

from __future__ import annotations

from dataclasses import replace

from balancer.model import VM, HostState, Move, MoveCost, PastMove, PlannerState, VMTags
from balancer.policy import PlanArgs, plan
from balancer.policy.args import AffinityRule, LabelRule, PinRule, RulesArgs
from balancer.reasons import Reason
from tests.builders import GIB, NOW, host, snapshot, vm


def drain_to(v: VM, *targets, rules: RulesArgs = RulesArgs(), state: PlannerState = PlannerState()):  # type: ignore[no-untyped-def]
    snap = snapshot([host("a", state=HostState.DRAINING), *targets], [v])
    return plan(snap, state, PlanArgs(rules=rules), NOW)


def only_move(p):  # type: ignore[no-untyped-def]
    drains = [m for m in p.moves if m.reason == Reason.DRAIN]
    assert len(drains) == 1, (p.moves, p.skips)
    return drains[0]


def test_pin_in_config_and_tag() -> None:
    p = drain_to(vm("v", "a"), host("b"), host("c"), rules=RulesArgs(pins=(PinRule(vm="v", hosts=("c",)),)))
    assert only_move(p).target == "c"
    p = drain_to(vm("v", "a", tags=VMTags(pin_hosts=("c",))), host("b"), host("c"))
    assert only_move(p).target == "c"
    p = drain_to(
        vm("v", "a", tags=VMTags(pin_hosts=("b",))),
        host("c"),
        rules=RulesArgs(pins=(PinRule(vm="v", hosts=("c",)),)),
    )
    (skip,) = p.skips[:1]
    assert skip.reason == Reason.PINNED and "pinned to" in skip.detail  # tag ∩ config = nothing


def test_required_and_preferred_labels() -> None:
    gpu = host("c", labels={"gpu": "yes"})
    req = RulesArgs(host_labels=(LabelRule(vms=("ml-*",), labels={"gpu": "yes"}, required=True),))
    assert only_move(drain_to(vm("ml-1", "a"), host("b"), gpu, rules=req)).target == "c"
    p = drain_to(vm("ml-1", "a"), host("b"), rules=req)
    assert p.skips[0].reason == Reason.LABEL_MISMATCH
    pref = RulesArgs(host_labels=(LabelRule(vms=("ml-*",), labels={"gpu": "yes"}, required=False),))
    assert only_move(drain_to(vm("ml-1", "a"), host("b"), gpu, rules=pref)).target == "c"
    assert only_move(drain_to(vm("ml-1", "a"), host("b"), rules=pref)).target == "b"  # a preference only


def test_anti_affinity_from_config_and_from_tags() -> None:
    rules = RulesArgs(anti_affinity=(AffinityRule(name="dbs", vms=("db1", "db2")),))
    snap = snapshot(
        [host("a", state=HostState.DRAINING), host("b"), host("c")], [vm("db1", "a"), vm("db2", "b")]
    )
    assert only_move(plan(snap, PlannerState(), PlanArgs(rules=rules), NOW)).target == "c"
    tagged = snapshot(
        [host("a", state=HostState.DRAINING), host("b")],
        [vm("x", "a", tags=VMTags(groups=("etcd",))), vm("y", "b", tags=VMTags(groups=("etcd",)))],
    )
    p = plan(tagged, PlannerState(), PlanArgs(), NOW)
    assert p.moves == () and p.skips[0].reason == Reason.ANTI_AFFINITY and "tag:etcd" in p.skips[0].detail


def test_affinity_member_joins_the_others_and_is_not_balanced_alone() -> None:
    rules = RulesArgs(affinity=(AffinityRule(name="pair", vms=("app", "db")),))
    p = drain_to(vm("app", "a"), host("b"), host("c"), rules=rules)  # db not in the snapshot: no group
    assert only_move(p).target == "b"
    snap = snapshot(
        [host("a", state=HostState.DRAINING), host("b"), host("c")], [vm("app", "a"), vm("db", "c")]
    )
    assert only_move(plan(snap, PlannerState(), PlanArgs(rules=rules), NOW)).target == "c"


def test_excluded_hosts_maintenance_and_down_are_never_targets() -> None:
    snap = snapshot(
        [
            host("a", state=HostState.DRAINING),
            host("m", state=HostState.MAINTENANCE),
            host("d", state=HostState.DOWN),
            host("x"),
            host("z"),
        ],
        [vm("v", "a")],
    )
    p = plan(snap, PlannerState(), PlanArgs(rules=RulesArgs(exclude_hosts=("x",))), NOW)
    assert only_move(p).target == "z"


def test_in_flight_counts_on_its_target_and_is_not_moved() -> None:
    flying = Move("big", "b", "c", Reason.BALANCE, MoveCost(0, 0, 0, 0.0))
    snap = snapshot(
        [host("a", state=HostState.DRAINING), host("b"), host("c")],
        [vm("v", "a", memory_bytes=30 * GIB), vm("big", "b", memory_bytes=40 * GIB)],
    )
    p = plan(snap, PlannerState(in_flight=(flying,)), PlanArgs(), NOW)
    # c already counts big's 40 GiB (54.4 under the mark), so v (30 GiB) goes to b, which big leaves
    assert only_move(p).target == "b"
    snap2 = snapshot([host("b", state=HostState.DRAINING), host("c")], [vm("big", "b")])
    p2 = plan(
        snap2,
        PlannerState(in_flight=(Move("big", "b", "b2", Reason.DRAIN, MoveCost(0, 0, 0, 0.0)),)),
        PlanArgs(),
        NOW,
    )
    assert p2.moves == () and p2.skips[0].reason == Reason.IN_FLIGHT


def hot_pair(history: int = 5) -> tuple:  # type: ignore[type-arg]
    """h1 over its cpu mark (14 of 16 cores) for ``history`` ticks; h2 idle."""
    return snapshot(
        [host("h1", cpu_history=(14.0,) * history), host("h2")],
        [vm(f"v{i}", "h1", cpu_cores=3.5, memory_bytes=GIB) for i in range(4)],
    )


def test_cooldown_and_quarantine_stop_hotspot_moves() -> None:
    recent = tuple(PastMove(f"v{i}", "h2", "h1", NOW - 60, succeeded=True) for i in range(4))
    p = plan(hot_pair(), PlannerState(recent=recent), PlanArgs(), NOW)
    assert p.moves == ()
    vm_skips = {s.name: s.reason for s in p.skips if s.subject == "vm"}
    assert vm_skips == {f"v{i}": Reason.COOLDOWN for i in range(4)}
    failed = tuple(PastMove(f"v{i}", "h2", "h1", NOW - 60, succeeded=False) for i in range(4))
    p = plan(hot_pair(), PlannerState(recent=failed), PlanArgs(), NOW)
    assert p.moves == () and {s.reason for s in p.skips if s.subject == "vm"} == {Reason.QUARANTINED}
    old = tuple(PastMove(f"v{i}", "h3", "h1", NOW - 3 * 3600, succeeded=False) for i in range(4))
    assert plan(hot_pair(), PlannerState(recent=old), PlanArgs(), NOW).moves != ()


def test_a_refused_move_is_no_quarantine_but_steers_the_vm_off_that_target() -> None:
    # a pre-check refused v0..v3 on h2 (e.g. its pool was full): nothing was tried, so they are not
    # quarantined; within the cooldown they are not sent to h2 again, later they may be
    refused = tuple(PastMove(f"v{i}", "h1", "h2", NOW - 60, succeeded=False, refused=True) for i in range(4))
    p = plan(hot_pair(), PlannerState(recent=refused), PlanArgs(), NOW)
    assert p.moves == ()
    assert {s.reason for s in p.skips if s.subject == "vm"} == {Reason.COOLDOWN}
    snap = snapshot([*hot_pair().hosts, host("h3")], list(hot_pair().vms))
    assert {m.target for m in plan(snap, PlannerState(recent=refused), PlanArgs(), NOW).moves} == {"h3"}
    old = tuple(replace(p, finished_at=NOW - 3 * 3600) for p in refused)
    assert {m.target for m in plan(hot_pair(), PlannerState(recent=old), PlanArgs(), NOW).moves} == {"h2"}


def test_a_drain_never_asks_a_target_that_refused_the_vm_again_within_the_cooldown() -> None:
    # a host that refused the VM in a pre-check is not the drain's fallback (as a host it left is): the
    # drain goes elsewhere, or names the refusal as its blocker instead of asking again every tick
    refused = (PastMove("v", "a", "b", NOW - 60, succeeded=False, refused=True),)
    assert (
        only_move(drain_to(vm("v", "a"), host("b"), host("c"), state=PlannerState(recent=refused))).target
        == "c"
    )
    p = drain_to(vm("v", "a"), host("b"), state=PlannerState(recent=refused))
    assert [m for m in p.moves if m.reason == Reason.DRAIN] == []
    (skip,) = [s for s in p.skips if s.subject == "vm" and s.name == "v"]
    assert (
        skip.reason == Reason.COOLDOWN and "refused it in a pre-check" in skip.detail and "(b)" in skip.detail
    )
    later = (replace(refused[0], finished_at=NOW - 3 * 3600),)
    assert only_move(drain_to(vm("v", "a"), host("b"), state=PlannerState(recent=later))).target == "b"


def test_no_ping_pong_back_to_a_host_left_within_cooldown() -> None:
    # non-drain goals: a VM in its cooldown window does not move at all (above); a drain avoids the host
    # the VM just left as long as another host fits
    snap = snapshot(
        [host("a", state=HostState.DRAINING), host("b"), host("c")],
        [vm("v", "a"), vm("w", "c", memory_bytes=16 * GIB, cpu_cores=4.0)],
    )
    assert only_move(plan(snap, PlannerState(), PlanArgs(), NOW)).target == "b"
    recent = (PastMove("v", "b", "a", NOW - 600, succeeded=True),)
    assert only_move(plan(snap, PlannerState(recent=recent), PlanArgs(), NOW)).target == "c"
    full = snapshot(
        [host("a", state=HostState.DRAINING), host("b"), host("c", memory_bytes=8 * GIB)],
        [vm("v", "a"), vm("w", "c", memory_bytes=6 * GIB)],
    )
    assert only_move(plan(full, PlannerState(recent=recent), PlanArgs(), NOW)).target == "b"
