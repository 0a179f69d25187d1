"""Balance by expected overload: the move that saves the most expected overload, while one saves enough.

Triggers: moves left in the balance budget (``policy.max_moves_per_tick``) and some host at risk of being
over its CPU mark (risk.py); ``policy.balance_objective`` "overload" (the default).

A balance move is judged by what it is expected to buy over the time it stands, the cooldown after it
lands (``policy.cooldown_minutes``: the VM is not moved again before): the cut of the expected number of
hosts over their CPU mark (``p_s + p_t − p_s' − p_t'``, from every VM's forecast level and spread, so a
noisy VM's spike is no reason to move it, and a VM whose level rose is moved at once), times the share of
the cooldown left once its bytes are copied (``1 − seconds / cooldown``: a move saves nothing while it
copies). It qualifies when that is at least ``policy.min_overload_cut``; of those the largest is taken,
ties to fewer bytes, then the VM and the host first by name. Bytes count through the copy time and the
tie-break; bench/policy_compare.py checks that the GiB moved stay under the std-dev what-if's.

Scoring is vectorised over VMs × targets, feasibility from constraints.feasible_rows (the CPU mark on
the planned demand, memory, disk, rules, cooldown). VMs are scored in decreasing order of an exact upper
bound of their cut, what their source gains (a feasible target keeps its planned demand under its mark,
so its chance can only grow): scoring stops when no VM left can beat the best move found, and VMs whose
source cannot gain ``min_overload_cut`` are never scored, which is most of them in a healthy fleet.

Outcomes, as a plan-level Skip named ``balance``: ``balanced`` (no host's chance to be over its mark
reaches ``min_overload_cut``, so no move could cut that much), ``no_beneficial_move`` (some host is at
risk, but no move cuts enough within the rules and capacity) or ``budget_spent``.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from balancer.model import Move
from balancer.policy.arrays import GIB
from balancer.policy.constraints import feasible_rows
from balancer.policy.risk import HostRisk, vm_variance
from balancer.policy.workspace import Workspace
from balancer.reasons import Reason

CELLS = 1 << 16  # VM × host cells scored per chunk


def levels(ws: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """(V,) each VM's expected CPU level and its variance (cores, cores²)."""
    arr = ws.arr
    if arr.forecast is not None:
        return arr.forecast.level, vm_variance(arr.forecast)
    # planned on cpu_cores: the spread it carries is all we know of its noise
    level = np.array([v.cpu_cores for v in arr.vms], dtype=np.float64)
    var = np.array([v.cpu_std_cores for v in arr.vms], dtype=np.float64) ** 2
    return level, var


def expected_over(ws: Workspace) -> float:
    """The expected number of active hosts over their CPU mark, with the VMs where ``ws`` has them now."""
    level, var = levels(ws)
    chance = HostRisk.of(level, var, ws.home, ws.arr.mark[:, 0]).chance()
    return float(chance[ws.arr.active].sum())


def run(ws: Workspace) -> None:
    arr = ws.arr
    level, var = levels(ws)
    risk = HostRisk.of(level, var, ws.home, arr.mark[:, 0])
    need = ws.policy.min_overload_cut
    made = 0
    while True:
        found = best_move(ws, risk, level, var, need)
        if found is None:
            if made == 0 and risk.chance().max(initial=0.0) < need:  # no move could cut that much
                ws.skip("plan", "balance", Reason.BALANCED, f"{_at_risk(risk)}; under {need:g} on every host")
            elif made == 0:
                ws.skip(
                    "plan",
                    "balance",
                    Reason.NO_BENEFICIAL_MOVE,
                    f"{_at_risk(risk)}; no move cuts it by {need:g} within the rules and capacity",
                )
            return
        if not ws.spend():
            ws.skip("plan", "balance", Reason.BUDGET_SPENT, f"{_at_risk(risk)}; max_moves_per_tick spent")
            return
        v, t, cut = found
        s = int(ws.home[v])
        before = risk.chance()[[s, t]]
        risk.shift(s, t, float(level[v]), float(var[v]))
        after = risk.chance()[[s, t]]
        minutes = ws.policy.cooldown_minutes
        ws.move(v, t, Reason.BALANCE, partial(_detail, cut=cut, before=before, after=after, minutes=minutes))
        made += 1


def _at_risk(risk: HostRisk) -> str:
    p = risk.chance()
    return f"expected hosts over the CPU mark {p.sum():.3f} (most at risk: {p.max(initial=0.0):.1%})"


def _detail(mv: Move, *, cut: float, before: np.ndarray, after: np.ndarray, minutes: float) -> str:
    return (
        f"chance over the CPU mark: {mv.source} {before[0]:.1%}→{after[0]:.1%}, {mv.target} "
        f"{before[1]:.1%}→{after[1]:.1%}; about {cut * minutes:.1f} host·min of overload saved over "
        f"the {minutes:g} min it stands, for {mv.cost.total_bytes / GIB:.1f} GiB to copy"
    )


def best_move(
    ws: Workspace, risk: HostRisk, level: np.ndarray, var: np.ndarray, need: float
) -> tuple[int, int, float] | None:
    """(VM, target, cut) with the largest expected cut of hosts over the mark among those ≥ ``need``."""
    arr = ws.arr
    vs = np.flatnonzero(ws.movable("balance") & (ws.home >= 0))
    vs = vs[arr.active[ws.home[vs]]]
    if vs.size == 0:
        return None
    p = risk.chance()
    src = ws.home[vs]
    gain = p[src] - risk.over(src, -level[vs], -var[vs])
    keep = (gain >= need) & (gain > 0)  # a move must cut something, even with min_overload_cut 0
    vs, gain = vs[keep], gain[keep]
    if vs.size == 0:
        return None
    horizon = ws.policy.cooldown_minutes * 60.0
    order = np.lexsort((vs, -gain))
    chunk = max(1, CELLS // arr.n_hosts)
    best: tuple[int, int, float] | None = None
    best_key = (need, -np.inf)  # (cut, −bytes): larger is better
    for start in range(0, order.size, chunk):
        idx = order[start : start + chunk]
        if gain[idx[0]] < best_key[0]:
            break
        cv = vs[idx]
        missing = ws.missing_rows(cv)
        ok = feasible_rows(ws, cv, missing, "balance")
        target_p = risk.over_all(level[cv, None], var[cv, None])
        nbytes = ws.costs.base[cv, None] + missing
        stands = 1.0 - nbytes / ws.costs.bandwidth_bytes_s / horizon if horizon > 0 else 1.0
        cut = (gain[idx, None] - (target_p - p[None, :])) * np.clip(stands, 0.0, 1.0)
        cut = np.where(ok & (cut >= need) & (cut > 0), cut, -np.inf)
        top = cut.max()
        if not np.isfinite(top) or top < best_key[0]:
            continue
        rows, cols = np.nonzero(cut >= top * (1 - 1e-12))
        cheapest = np.lexsort((cols, cv[rows], nbytes[rows, cols]))[0]  # fewer bytes, then names
        i, t = int(rows[cheapest]), int(cols[cheapest])
        key = (float(cut[i, t]), -float(nbytes[i, t]))
        if best is None or key > best_key:
            best, best_key = (int(cv[i]), t, float(cut[i, t])), key
    return best
