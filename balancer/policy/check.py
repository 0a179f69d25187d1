"""Re-check one planned move against the placement rules when the executor is about to start it.

The cluster changed since planning (other moves ran, VMs came and went), so the executor asks
this before each migration. Same rule semantics as constraints.py, for one move on the current
snapshot; capacity is the executor's own pre-check (free memory and disk on the target).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from balancer.model import Move, Snapshot
from balancer.policy.args import RulesArgs
from balancer.reasons import Reason


def violation(move: Move, snap: Snapshot, rules: RulesArgs) -> Reason | None:
    """The rule ``move`` would break on ``snap`` now, or None."""
    try:
        vm = snap.vm(move.vm)
        target = snap.host(move.target)
    except KeyError:
        return None  # a VM or host that vanished is the executor's own pre-check (skip / target_unknown)
    if vm.tags.exclude or any(fnmatch.fnmatchcase(vm.name, p) for p in rules.exclude_vms):
        return Reason.EXCLUDED
    if move.target in rules.exclude_hosts:
        return Reason.TARGET_IN_MAINTENANCE
    pins = [set(p.hosts) for p in rules.pins if p.vm == vm.name]
    if vm.tags.pin_hosts:
        pins.append(set(vm.tags.pin_hosts))
    if any(move.target not in allowed for allowed in pins):
        return Reason.PINNED
    for rule in rules.host_labels:
        applies = rule.required and any(fnmatch.fnmatchcase(vm.name, p) for p in rule.vms)
        if applies and any(target.labels.get(k) != v for k, v in rule.labels.items()):
            return Reason.LABEL_MISMATCH
    on_target = {v.name for v in snap.vms if v.host == move.target and v.name != vm.name}
    groups = [set(r.vms) for r in rules.anti_affinity if vm.name in r.vms]
    groups += [{v.name for v in snap.vms if g in v.tags.groups} for g in vm.tags.groups]
    if any((g - {vm.name}) & on_target for g in groups):
        return Reason.ANTI_AFFINITY
    if move.reason != Reason.DRAIN:
        # A drain moves an affinity group member by member to one target; anything else moving one
        # member away from its group's other members would split the group.
        for r in rules.affinity:
            if vm.name in r.vms:
                others = {v.host for v in snap.vms if v.name in r.vms and v.name != vm.name}
                if others and move.target not in others:
                    return Reason.AFFINITY
    return None


def rule_checker(rules: RulesArgs) -> Callable[[Move, Snapshot], Reason | None]:
    """``violation`` bound to the configured rules: the executor's RuleCheck."""
    return lambda move, snap: violation(move, snap, rules)
