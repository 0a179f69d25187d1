"""Make room: open a target for a VM that must move and fits nowhere, by first moving other VMs off it.

When a VM must leave (a drain, or a VM a hot host's relief needs) and no eligible target has room
under its marks, a target may get room once other VMs leave it. For the ``TARGETS_TRIED`` eligible
targets closest to fitting (least shortfall, in shares of the host), the VMs on it that may move
(hotspot rules: not cooling, converging, not in an affinity group) are priced at their cheapest
feasible target as things are, and the cheapest set covering the shortfall in cpu and memory is chosen
(cover.py). An opening costs those moves plus the VM's own move onto the target, in bytes like any
move; the cheapest is planned: its moves first (reason ``make_room``, flagged with the reason of the
move they serve), each onto its cheapest feasible target, then the VM's own move (the caller plans it),
whose ``Move.after`` names the VMs moved off for it: the executor starts it once they have left, so the
target is never over a mark, cpu included.

Chains: when no opening one level deep exists, a VM to move away that fits nowhere may have room made
for it in turn (two levels, ``DEPTH``), at most ``CHAINED`` such VMs per target, never onto the target
being opened or the hosts above it in the chain.

Bounds (the planner has no clock, so they are counts): ``DEPTH`` levels, ``TARGETS_TRIED`` targets
priced per VM and level; a target short of disk is not tried. An opening whose moves no longer place
(two evictions wanting the same room) is given up and the workspace restored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from balancer.model import Move
from balancer.policy.arrays import GIB
from balancer.policy.constraints import Goal, feasible_rows, room_for
from balancer.policy.cover import min_cost_cover
from balancer.policy.workspace import Workspace
from balancer.reasons import Reason

TARGETS_TRIED = 8
DEPTH = 2
CHAINED = 2


@dataclass(frozen=True)
class Opening:
    """Room for one VM on ``target`` once ``evict`` have left it; ``bytes`` = their moves + the VM's.
    ``chains``: openings for the evicted VMs that need room made in turn (by VM)."""

    target: int
    evict: tuple[int, ...]
    bytes: float
    chains: tuple[tuple[int, Opening], ...] = ()


def cheapest(
    ws: Workspace, v: int, goal: Goal, avoid: np.ndarray | None = None, depth: int = DEPTH
) -> Opening | None:
    """The cheapest opening for VM ``v`` (moving for ``goal``), or None; ``avoid`` (H,) hosts the
    evicted VMs may not go to (besides the target). Chained (``depth`` > 1) only when no opening one
    level deep exists."""
    found = _cheapest(ws, v, goal, avoid, chain=0)
    for level in range(1, depth):
        if found is not None:
            break
        found = _cheapest(ws, v, goal, avoid, chain=level)
    return found


def _cheapest(ws: Workspace, v: int, goal: Goal, avoid: np.ndarray | None, chain: int) -> Opening | None:
    arr = ws.arr
    allowed = ws.candidates((v,), goal, capacity=False).mask
    if not allowed.any():
        return None
    d, missing_v = arr.demand[v], ws.sig_missing[ws.sig[v]]
    short = ws.used + d - arr.mark
    short[:, 2] += missing_v
    short = np.maximum(short, 0.0)
    share = np.divide(
        short[:, :2], arr.cap[:, :2], out=np.full((arr.n_hosts, 2), np.inf), where=arr.cap[:, :2] > 0
    )
    score = np.where(allowed & (short[:, 2] <= 0), share.max(axis=1), np.inf)
    tried = np.lexsort((np.arange(arr.n_hosts), score))[:TARGETS_TRIED]
    movable = ws.movable("hotspot")
    best: Opening | None = None
    for t in tried[np.isfinite(score[tried])].tolist():
        us = ws.vms_on(t)
        us = us[movable[us] & (us != v)]
        if us.size == 0:
            continue
        missing = ws.missing_rows(us)
        rows = feasible_rows(ws, us, missing)
        away = np.zeros(arr.n_hosts, dtype=bool) if avoid is None else avoid.copy()
        away[[t, int(ws.home[v])]] = True
        rows &= ~away
        price = np.where(rows, ws.costs.base[us, None] + missing, np.inf).min(axis=1)
        chains: dict[int, Opening] = {}
        if chain > 0:  # VMs to move away that fit nowhere: room made for them in turn, cheapest first
            lacking = np.flatnonzero(~np.isfinite(price))
            for i in lacking[np.lexsort((lacking, ws.costs.base[us[lacking]]))][:CHAINED].tolist():
                sub = _cheapest(ws, int(us[i]), "hotspot", away, chain - 1)
                if sub is not None:
                    chains[i], price[i] = sub, sub.bytes
        pick = min_cost_cover(arr.demand[us, :2], short[t, :2], price)
        if pick is None:
            continue
        total = float(price[pick].sum()) + float(ws.costs.base[v] + missing_v[t])
        if best is None or total < best.bytes:
            linked = tuple((int(us[i]), chains[i]) for i in pick.tolist() if i in chains)
            best = Opening(t, tuple(int(u) for u in us[pick]), total, linked)
    return best


def make(ws: Workspace, v: int, opening: Opening, serves: Reason, why: str) -> bool:
    """Plan ``opening``'s evictions so that ``v`` fits its target; False (and nothing planned) when one
    no longer places or ``v`` still does not fit."""
    start = ws.mark()
    t, h = opening.target, int(ws.home[v])
    chains = dict(opening.chains)
    for u in sorted(opening.evict, key=lambda u: (-float(ws.arr.demand[u, :2].sum()), u)):
        if u in chains and not make(ws, u, chains[u], serves, why):
            ws.rollback(start)
            return False
        found = ws.candidates((u,), "hotspot").mask
        found[[h, t]] = False
        if not found.any():
            ws.rollback(start)
            return False
        cost = np.where(found, ws.bytes_rows(np.array([u]))[0], np.inf)
        target = ws.choose((u,), cost <= cost.min() * (1 + 1e-9), "tight")
        ws.move(u, target, Reason.MAKE_ROOM, _detail(ws, v, why), flags=(serves,))
    fits = room_for(ws, ws.arr.demand[v], ws.sig_missing[ws.sig[v]])[:, t].all()
    if not fits:
        ws.rollback(start)
    else:
        ws.room_made[v] = (t, opening.evict)
    return bool(fits)


def _detail(ws: Workspace, v: int, why: str) -> Callable[[Move], str]:
    name = ws.vm_name(v)

    def detail(mv: Move) -> str:
        return f"makes room on {mv.source} for {name} ({why}): {mv.cost.total_bytes / GIB:.1f} GiB to copy"

    return detail
