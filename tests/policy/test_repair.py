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
