"""One rule engine: feasible_rows (vectorised) and verdict agree, and check.py (the executor's re-check on
a snapshot) refuses exactly the targets the planner's rules refuse."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from balancer.model import HostState, Move, MoveCost
from balancer.policy import workspace
from balancer.policy.check import violation
from balancer.policy.constraints import feasible_rows
from balancer.reasons import Reason
from tests.builders import NOW
from tests.policy.oracle import apply
from tests.policy.strategies import Case, cases


@settings(max_examples=80, deadline=None)
@given(cases())
def test_feasible_rows_equals_verdict_for_every_movable_vm(case: Case) -> None:
    ws = workspace(case.snap, case.state, case.args, NOW)
    for goal in ("hotspot", "balance"):
        vs = np.flatnonzero(ws.movable(goal) & (ws.home >= 0))
        rows = feasible_rows(ws, vs, ws.missing_rows(vs), goal)
        for i, v in enumerate(vs.tolist()):
            assert np.array_equal(rows[i], ws.candidates((v,), goal).mask), (goal, ws.vm_name(v))


@settings(max_examples=80, deadline=None)
@given(cases())
def test_check_refuses_what_the_planner_rules_refuse(case: Case) -> None:
    # Rules both sides own: exclusion, pins, required labels, anti-affinity. The planner's other refusals
    # (host state, cooldown, in flight, capacity) are the executor's pre-checks; for an affinity member
    # the planner is stricter (it never moves one alone; check.py refuses only a move that splits it).
    ws = workspace(case.snap, case.state, case.args, NOW)
    rules = case.args.rules
    cost = MoveCost(0, 0, 0, 0.0)
    landed = apply(case.snap, case.state.in_flight)  # the planner counts moves in flight as arrived
    for v in range(ws.arr.n_vms):
        vm = ws.arr.vms[v]
        skip = v in ws.rules.left or v in ws.rules.cooldown or v in ws.rules.vm_affinity
        if ws.home[v] < 0 or ws.arr.in_flight[v] or skip:
            continue
        allowed = ws.candidates((v,), "hotspot", capacity=False).mask
        blocked = ws.blocker(v, "hotspot")
        if blocked is not None and blocked[0] not in RULE_REASONS:
            continue  # not running, quarantined, would not converge: the executor's own pre-checks
        for t, h in enumerate(ws.arr.hosts):
            if t == ws.home[v] or not ws.arr.active[t] or h.state != HostState.UP:
                continue
            said = violation(Move(vm.name, vm.host, h.name, Reason.HOTSPOT, cost), landed, rules)
            planner_ok = allowed[t] and blocked is None
            assert (said is None) == planner_ok, (vm.name, h.name, said, blocked, allowed[t])


RULE_REASONS = (Reason.EXCLUDED,)
