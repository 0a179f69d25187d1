"""Planning: ``plan(snapshot, state, args, now) → Plan``. Pure: numpy in, a Plan value out; no I/O, no clock.

Goals run in order on one Workspace (workspace.py), each seeing the moves of those before it:

1. drain (drain.py): empty draining hosts.
2. repair (repair.py): fix broken affinity / anti-affinity rules (``affinity_repair``).
3. hotspot (hotspot.py): bring hosts that stayed over their mark under it, at least bytes.
4. balance (balance.py): cut the expected overload while a move buys ``min_overload_cut`` (overload.py),
   or, with ``balance_objective`` "imbalance", the std-dev of load while a move clears ``min_improvement``.

Drains, repairs and relief are complete: every VM that can leave a draining host and every host that
can be relieved gets its moves, however many (the executor's limits pace them); what cannot is a Skip
with its reason. Only balance has a budget, ``max_moves_per_tick`` per 100 active hosts. Drain and
relief are planned together: when a drain took room that relief needed (a hot host stays hot), the
plan is made again with relief first, and kept when it drains no fewer VMs and relieves more hosts
(or as many for fewer bytes): the drains then use other targets, dearer ones only when that is what
relieving a host takes.

Ties are broken by name order (hosts and VMs are sorted by name first), so the same input always gives
an equal Plan whatever order the snapshot lists things in; nothing is left to chance. Moves are listed in the
order they must run: a later move may rely on room an earlier one frees (``make_room`` moves, a
hotspot's chain of relief).

A standing proposal (``PlannerState.standing``, recommend mode) is kept while it is as good as the fresh
plan by the planner's own measures, so noise does not replace the proposal an operator is reviewing
(standing.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from balancer.model import Plan, PlannerState, Snapshot
from balancer.policy import balance, drain, hotspot, repair, standing
from balancer.policy.args import PolicyArgs, RulesArgs, ThresholdArgs
from balancer.policy.measure import measure
from balancer.policy.workspace import Checkpoint, Workspace

GOALS = (drain, repair, hotspot, balance)


@dataclass(frozen=True)
class PlanArgs:
    """Everything plan() reads besides the snapshot and state."""

    thresholds: ThresholdArgs = field(default_factory=ThresholdArgs)
    policy: PolicyArgs = field(default_factory=PolicyArgs)
    rules: RulesArgs = field(default_factory=RulesArgs)
    bandwidth_mib_s: int = 100  # per-migration cap (limits.bandwidth_mib_s): the cost model's transfer rate


def workspace(snapshot: Snapshot, state: PlannerState, args: PlanArgs, now: float) -> Workspace:
    """The Workspace plan() starts from (for tools that inspect the problem, e.g. bench/exact.py)."""
    return Workspace(snapshot, state, args.thresholds, args.policy, args.rules, args.bandwidth_mib_s, now)


def plan(snapshot: Snapshot, state: PlannerState, args: PlanArgs, now: float) -> Plan:
    """Moves (with reasons, costs and predicted loads) and skips for one tick; deterministic."""
    ws = workspace(snapshot, state, args, now)
    start = ws.checkpoint()
    _plan_fresh(ws, start)
    if state.standing:  # keep the proposal operators are reviewing while it is as good (standing.py)
        fresh, fresh_measure = ws.checkpoint(), measure(ws)
        ws.restore(start)
        kept = standing.replay(ws, state.standing) and standing.as_good(ws, measure(ws), fresh_measure)
        if not kept:
            ws.restore(fresh)
    return ws.to_plan()


def _plan_fresh(ws: Workspace, start: Checkpoint) -> None:
    for goal in GOALS[:-1]:
        goal.run(ws)
    if ws.arr.draining.any() and ws.overloaded_hosts():  # a drain may have taken the room relief needs
        first, kept = measure(ws), ws.checkpoint()
        ws.restore(start)
        for goal in (repair, hotspot, drain):
            goal.run(ws)
        alt = measure(ws)
        better = alt.overloaded < first.overloaded or (
            alt.overloaded == first.overloaded and alt.bytes < first.bytes
        )
        if not (better and alt.left_on_draining <= first.left_on_draining):
            ws.restore(kept)
    balance.run(ws)


__all__ = ["GOALS", "PlanArgs", "plan", "workspace"]
