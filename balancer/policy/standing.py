"""A standing proposal stays while it is as good as a fresh plan.

In ``recommend`` mode operators review the proposal before they approve it. Choices that differ only by
measurement noise (two VMs a few hundredths of a core apart, two targets equally loaded) flip from one
tick to the next, and every flip would replace the proposal an operator is reading: a new id, and an
approval of the old one refused. So ``plan()`` also replays the standing proposal on the new snapshot:
the urgent goals as usual (drain, repair), then the standing moves in their order, each only if its VM
is still on its source and the move is still allowed for the goal that made it (rules, capacity,
cooldown: the same feasibility), then relief and balance for whatever the standing moves leave.

The replay is kept when it is no worse than the fresh plan by the planner's own measures: no more VMs
left on draining hosts, no more hosts over a mark, the balance objective within the margin one move must
buy to qualify (``min_overload_cut`` expected hosts over the mark, or ``min_improvement`` of the
imbalance), and bytes within ``BYTES_SLACK`` of the fresh plan's. Anything better by more than that
margin replaces the proposal, as before. A standing move whose migration already runs (an operator
approved it), or that drain or repair planned again this tick, is not planned twice.
"""

from __future__ import annotations

import numpy as np

from balancer.model import Move
from balancer.policy import balance, drain, hotspot, repair
from balancer.policy.constraints import Goal, feasible_rows
from balancer.policy.measure import Measure
from balancer.policy.workspace import Workspace
from balancer.reasons import Reason

BYTES_SLACK = 0.10  # a fresh plan must copy 10 % fewer bytes to replace an otherwise equal proposal

_GOAL: dict[Reason, Goal] = {
    Reason.HOTSPOT: "hotspot",
    Reason.MAKE_ROOM: "hotspot",
    Reason.BALANCE: "balance",
    Reason.AFFINITY_REPAIR: "repair",
}


def as_good(ws: Workspace, standing: Measure, fresh: Measure) -> bool:
    """Whether the plan with the standing moves is no worse than the fresh one, within the margins."""
    return (
        standing.left_on_draining <= fresh.left_on_draining
        and standing.overloaded <= fresh.overloaded
        and standing.objective <= fresh.objective + _tolerance(ws, fresh)
        and standing.bytes <= fresh.bytes * (1.0 + BYTES_SLACK)
    )


def _tolerance(ws: Workspace, fresh: Measure) -> float:
    """The objective margin a single balance move must buy: smaller differences are noise to the planner."""
    if ws.policy.balance_objective == "overload":
        return float(ws.policy.min_overload_cut)
    return fresh.objective * float(ws.policy.min_improvement)


def replay(ws: Workspace, standing: tuple[Move, ...]) -> bool:
    """Plan on ``ws`` (at its start) with the standing moves first after the urgent goals; False when one
    of them no longer stands (VM gone or moved, target not allowed or full), ``ws`` then half-planned."""
    drain.run(ws)
    repair.run(ws)
    arr = ws.arr
    for m in standing:
        goal = _GOAL.get(m.reason)
        v, s, t = arr.vm_index.get(m.vm), arr.host_index.get(m.source), arr.host_index.get(m.target)
        if goal is None or v is None or s is None or t is None:
            return False
        if ws.home[v] == t and (arr.in_flight[v] or ws.moved[v]):
            continue  # approved and running, or planned by drain or repair already: not planned twice
        if ws.home[v] != s or not ws.movable(goal)[v]:
            return False
        one = np.array([v])
        if not feasible_rows(ws, one, ws.missing_rows(one), goal)[0, t]:
            return False
        if goal == "balance" and not ws.spend():
            return False
        # its ``after`` keeps the room its make_room moves open (room.py records it on the first plan only)
        ws.move(v, t, m.reason, m.detail, m.flags, wait_for=m.after)
    hotspot.run(ws)
    balance.run(ws)
    return True
