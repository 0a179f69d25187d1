"""Balance: cut the expected overload (overload.py, the default) or, with ``policy.balance_objective``
"imbalance", the std-dev of load, as below.

Imbalance: while the imbalance is above target, take the move with the most imbalance cut per GiB copied.

Triggers: imbalance (objective.py) above ``thresholds.target_imbalance`` and moves left in
``policy.max_moves_per_tick`` (shared with hotspot relief).

Each step scores every movable VM × every target at once: imbalance after the move from the running
sums (objective.after_moves), bytes from cost.py, feasibility from constraints.feasible_rows. A move
qualifies when it cuts the imbalance by at least ``policy.min_improvement`` (relative); the best
benefit ÷ cost (imbalance cut per GiB) is taken, ties to the VM scored first (higher bound, then
name), then the host first by name. To stay fast on
large fleets the VMs are scored in chunks, in decreasing order of an exact upper bound of their ratio
(objective.lower_bound_after with their cheapest possible bytes); scoring stops as soon as no remaining
VM can beat the best move found, so the result is the same as scoring everything.

Outcomes, as a plan-level Skip named ``balance``: ``balanced`` (at or under target, no move needed),
``no_beneficial_move`` (no move clears the margin: a valid result, with the best cut on offer) or
``budget_spent`` (still above target when the budget ran out).
"""

from __future__ import annotations

import numpy as np

from balancer.model import Move
from balancer.policy import objective, overload
from balancer.policy.arrays import GIB
from balancer.policy.constraints import feasible_rows
from balancer.policy.workspace import Workspace
from balancer.reasons import Reason

CELLS = 1 << 16  # VM × host cells scored per chunk: small chunks let the bound stop early


def run(ws: Workspace) -> None:
    if ws.policy.balance_objective == "overload":
        overload.run(ws)
    else:
        run_imbalance(ws)


def run_imbalance(ws: Workspace) -> None:
    target, margin = ws.thresholds.target_imbalance, ws.policy.min_improvement
    made = 0
    while True:
        now = ws.current
        if now <= target:
            if made == 0:
                ws.skip(
                    "plan",
                    "balance",
                    Reason.BALANCED,
                    f"imbalance {now:.4f} is at or under the target {target:.4f}",
                )
            return
        if ws.budget <= 0:
            ws.skip(
                "plan",
                "balance",
                Reason.BUDGET_SPENT,
                f"imbalance {now:.4f} still above the target {target:.4f}; max_moves_per_tick spent",
            )
            return
        found = best_move(ws, now * (1.0 - margin))
        if found is None:
            ws.skip(
                "plan",
                "balance",
                Reason.NO_BENEFICIAL_MOVE,
                f"imbalance {now:.4f} above the target {target:.4f}, but no move cuts it by "
                f"{margin:.0%} within the rules and capacity",
            )
            return
        v, t = found
        ws.spend()
        ws.move(v, t, Reason.BALANCE, _detail)
        made += 1


def _detail(mv: Move) -> str:
    cut = 1.0 - mv.imbalance_after / mv.imbalance_before if mv.imbalance_before > 0 else 0.0
    return (
        f"imbalance {mv.imbalance_before:.4f}→{mv.imbalance_after:.4f} (−{cut:.0%}) for "
        f"{mv.cost.total_bytes / GIB:.1f} GiB to copy"
    )


def best_move(ws: Workspace, need: float) -> tuple[int, int] | None:
    """(VM, target) with the best imbalance cut per GiB among moves ending at or under ``need``."""
    arr = ws.arr
    now = ws.current
    vs = np.flatnonzero(ws.movable("balance") & (ws.home >= 0))
    vs = vs[arr.active[ws.home[vs]]]
    act = np.flatnonzero(arr.active)
    if vs.size == 0 or act.size < 2:
        return None
    cap = arr.cap[:, :2]
    inv = np.divide(1.0, cap, out=np.zeros_like(cap), where=cap > 0)
    d = arr.demand[vs, :2]
    src = ws.home[vs]
    src_load, a = ws.load[src], d * inv[src]
    bound = objective.lower_bound_after(
        ws.sums,
        ws.weights,
        src_load,
        a,
        d,
        ws.load[act].min(axis=0),
        inv[act].min(axis=0),
        inv[act].max(axis=0),
    )
    keep = bound <= need
    vs, src_load, a, bound = vs[keep], src_load[keep], a[keep], bound[keep]
    if vs.size == 0:
        return None
    cheapest = np.maximum(ws.costs.base[vs], 1.0) / GIB
    upper = (now - bound) / cheapest
    order = np.lexsort((vs, -upper))
    chunk = max(1, CELLS // arr.n_hosts)
    best, best_ratio = None, 0.0
    for start in range(0, order.size, chunk):
        idx = order[start : start + chunk]
        if upper[idx[0]] <= best_ratio:
            break
        cv = vs[idx]
        missing = ws.missing_rows(cv)
        ok = feasible_rows(ws, cv, missing)
        after = objective.after_moves(
            ws.sums,
            ws.weights,
            src_load[idx, None, :],
            a[idx, None, :],
            ws.load[None, :, :],
            arr.demand[cv, None, :2] * inv[None, :, :],
        )
        ok &= (after <= need) & (after < now)
        gib = np.maximum(ws.costs.base[cv, None] + missing, 1.0) / GIB
        ratio = np.where(ok, (now - after) / gib, -np.inf)
        flat = int(np.argmax(ratio))
        i, t = divmod(flat, arr.n_hosts)
        if ratio[i, t] > best_ratio:
            best, best_ratio = (int(cv[i]), int(t)), float(ratio[i, t])
    return best
