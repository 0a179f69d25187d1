"""Affinity repair: broken rules are fixed first (reason affinity_repair), within the other rules."""

from __future__ import annotations

from balancer.model import PastMove, PlannerState, VMTags
from balancer.policy import PlanArgs, plan
from balancer.policy.args import AffinityRule, PolicyArgs, RulesArgs
from balancer.reasons import Reason
from tests.builders import GIB, NOW, host, snapshot, vm

QUIET = PolicyArgs(max_moves_per_tick=0)


def test_anti_affinity_broken_on_one_host_is_repaired() -> None:
    snap = snapshot(
        [host("h1"), host("h2"), host("h3")],
        [vm("db1", "h1", memory_bytes=8 * GIB), vm("db2", "h1"), vm("db3", "h2")],
    )
    rules = RulesArgs(anti_affinity=(AffinityRule(name="dbs", vms=("db1", "db2", "db3")),))
    p = plan(snap, PlannerState(), PlanArgs(rules=rules, policy=QUIET), NOW)
    assert [(m.vm, m.target, m.reason) for m in p.moves] == [("db2", "h3", Reason.AFFINITY_REPAIR)]
    assert "anti-affinity 'dbs': db1 stays on h1" in p.moves[0].detail  # the costlier one stays


def test_tag_groups_are_kept_apart_too() -> None:
    snap = snapshot(
        [host("h1"), host("h2")],
        [vm("x", "h1", tags=VMTags(groups=("zk",))), vm("y", "h1", tags=VMTags(groups=("zk",)))],
    )
    p = plan(snap, PlannerState(), PlanArgs(policy=QUIET), NOW)
    assert [(m.vm, m.target) for m in p.moves] == [("y", "h2")]


def test_affinity_stragglers_join_the_majority() -> None:
    snap = snapshot(
        [host("h1"), host("h2")],
        [vm("a", "h1"), vm("b", "h1"), vm("c", "h2")],
    )
    rules = RulesArgs(affinity=(AffinityRule(name="trio", vms=("a", "b", "c")),))
    p = plan(snap, PlannerState(), PlanArgs(rules=rules, policy=QUIET), NOW)
    assert [(m.vm, m.target, m.reason) for m in p.moves] == [("c", "h1", Reason.AFFINITY_REPAIR)]


def test_repair_respects_cooldown() -> None:
    snap = snapshot([host("h1"), host("h2")], [vm("x", "h1"), vm("y", "h1")])
    rules = RulesArgs(anti_affinity=(AffinityRule(name="p", vms=("x", "y")),))
    recent = (PastMove("x", "h2", "h1", NOW - 60, True), PastMove("y", "h2", "h1", NOW - 60, True))
    p = plan(snap, PlannerState(recent=recent), PlanArgs(rules=rules, policy=QUIET), NOW)
    assert p.moves == ()
    assert [s.reason for s in p.skips if s.subject == "vm"] == [Reason.COOLDOWN]


def test_a_member_leaving_for_anti_affinity_goes_to_its_affinity_group_and_moves_once() -> None:
    # Found by hypothesis: v04 had to leave h1 (anti-affinity with v05, which may not move) and went
    # to the cheapest host, h2; the affinity repair then moved it again, h2 → h0, to join v00.
    snap = snapshot(
        [host("h0"), host("h1"), host("h2")],
        [vm("v00", "h0"), vm("v04", "h1"), vm("v05", "h1", tags=VMTags(exclude=True))],
    )
    rules = RulesArgs(
        affinity=(AffinityRule(name="aff", vms=("v00", "v04")),),
        anti_affinity=(AffinityRule(name="anti", vms=("v04", "v05")),),
    )
    p = plan(snap, PlannerState(), PlanArgs(rules=rules, policy=QUIET), NOW)
    assert [(m.vm, m.source, m.target, m.reason) for m in p.moves] == [
        ("v04", "h1", "h0", Reason.AFFINITY_REPAIR)
    ]


def test_when_the_group_cannot_take_the_member_the_group_joins_it_instead() -> None:
    # v04 must leave h1 (anti with v05) but may not go to h0 either (anti with v06): it goes to h2,
    # and its affinity partner v00 follows it there rather than v04 moving a second time.
    snap = snapshot(
        [host("h0"), host("h1"), host("h2")],
        [
            vm("v00", "h0"),
            vm("v06", "h0", tags=VMTags(exclude=True)),
            vm("v04", "h1"),
            vm("v05", "h1", tags=VMTags(exclude=True)),
        ],
    )
    rules = RulesArgs(
        affinity=(AffinityRule(name="aff", vms=("v00", "v04")),),
        anti_affinity=(
            AffinityRule(name="anti", vms=("v04", "v05")),
            AffinityRule(name="apart", vms=("v04", "v06")),
        ),
    )
    p = plan(snap, PlannerState(), PlanArgs(rules=rules, policy=QUIET), NOW)
    assert sorted((m.vm, m.source, m.target) for m in p.moves) == [("v00", "h0", "h2"), ("v04", "h1", "h2")]


def test_contradicting_rules_are_reported_and_neither_is_broken_to_mend_the_other() -> None:
    # Found by hypothesis: v01 and v04 share a tag group (apart) and an affinity rule (together); the
    # anti-affinity repair moved v04 away, splitting a group that was whole.
    g1 = VMTags(groups=("g1",))
    snap = snapshot(
        [host("h0"), host("h1")], [vm("v00", "h0"), vm("v01", "h1", tags=g1), vm("v04", "h1", tags=g1)]
    )
    rules = RulesArgs(affinity=(AffinityRule(name="aff", vms=("v01", "v04")),))
    p = plan(snap, PlannerState(), PlanArgs(rules=rules, policy=QUIET), NOW)
    assert p.moves == ()
    (skip,) = [s for s in p.skips if s.subject == "vm"]
    assert skip.reason == Reason.AFFINITY and "rules conflict" in skip.detail
    assert "'aff'" in skip.detail and "'tag:g1'" in skip.detail


def test_a_member_leaving_for_anti_affinity_takes_its_affinity_partners_along() -> None:
    # x and y may not share a host, y may not move (excluded), and x's affinity partner p is with x:
    # x and p leave together, not x alone
    snap = snapshot(
        [host("h1"), host("h2"), host("h3")],
        [vm("x", "h1"), vm("p", "h1"), vm("y", "h1", tags=VMTags(exclude=True))],
    )
    rules = RulesArgs(
        affinity=(AffinityRule(name="pair", vms=("x", "p")),),
        anti_affinity=(AffinityRule(name="apart", vms=("x", "y")),),
    )
    p = plan(snap, PlannerState(), PlanArgs(rules=rules, policy=QUIET), NOW)
    targets = {m.vm: m.target for m in p.moves}
    assert set(targets) == {"x", "p"} and targets["x"] == targets["p"] != "h1"
    assert all(m.reason == Reason.AFFINITY_REPAIR for m in p.moves)
