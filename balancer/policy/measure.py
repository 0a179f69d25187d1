"""What a plan leaves, by the planner's own yardsticks (smaller is better for each): VMs still on draining
hosts, hosts over a mark, the balance objective, bytes to copy. ``plan()`` compares alternatives by it:
relief planned before drains against drains first, and a standing proposal against a fresh plan."""

from __future__ import annotations

from dataclasses import dataclass

from balancer.policy import overload
from balancer.policy.workspace import Workspace


@dataclass(frozen=True)
class Measure:
    left_on_draining: int
    overloaded: int
    objective: float  # expected hosts over the CPU mark, or the imbalance (policy.balance_objective)
    bytes: float


def measure(ws: Workspace) -> Measure:
    """The measure of the moves planned on ``ws`` so far."""
    left = int(ws.arr.draining[ws.home[ws.home >= 0]].sum())
    objective = overload.expected_over(ws) if ws.policy.balance_objective == "overload" else ws.current
    nbytes = float(sum(m.cost.total_bytes for m in ws.moves))
    return Measure(left, len(ws.overloaded_hosts()), objective, nbytes)
