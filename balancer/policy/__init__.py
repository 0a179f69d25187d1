"""Planning: ``plan(snapshot, state, args, now) → Plan``. Pure: numpy in, a Plan value out; no I/O, no clock.

Goals run in order on one Workspace (workspace.py), each seeing the moves of those before it:

1. drain (drain.py): empty draining hosts; not capped by ``max_moves_per_tick``.
2. repair (repair.py): fix broken affinity / anti-affinity rules (``affinity_repair``).
3. hotspot (hotspot.py): bring hosts that stayed over their mark under it, at least bytes.
4. balance (balance.py): cut the imbalance while a move clears ``min_improvement``.

Hotspot and balance share the ``max_moves_per_tick`` budget. Ties are broken by name order (hosts and
VMs are sorted by name first), so the same input always gives an equal Plan whatever order the
snapshot lists things in; nothing is random, so ``policy.seed`` is not needed (kept for config
compatibility). Moves are listed in the order they must run: a later move may rely on room an
earlier one frees (a drain's make-room move, a hotspot's chain of relief).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from balancer.model import Plan, PlannerState, Snapshot
from balancer.policy import balance, drain, hotspot, repair
from balancer.policy.args import PolicyArgs, RulesArgs, ThresholdArgs
from balancer.policy.workspace import Workspace

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
    for goal in GOALS:
        goal.run(ws)
    return ws.to_plan()


__all__ = ["GOALS", "PlanArgs", "plan", "workspace"]
