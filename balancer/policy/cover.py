"""Minimum-cost cover: pick items whose demand adds up to at least ``need`` in every column, cheapest.

This is the hotspot selection problem for one host: which VMs to move off so that the host drops
under its mark in each overloaded resource (1 or 2 columns), paying the fewest bytes.

Algorithm: first an upper bound, the cheapest single item that covers alone (else a greedy cover);
no item costing more can be in a cheaper cover, so those are dropped (exact). Then, up to 12 items
left, every subset (exact). Beyond, a 0/1 knapsack DP over coverage discretised
per column (2,000 steps for one column, 120 × 120 for two), coverage capped at the need, run twice:
demands rounded *down* (every DP solution is a true cover) and rounded to nearest (may fall short by
a rounding; completed greedily). Each result then goes through a local search (drop items not needed,
most expensive first; swap one chosen item for one or two cheaper unchosen ones while the cover
holds) and the cheaper is kept. When rounding leaves the DP without a solution (many items far below
one step), a greedy by relief per byte is used instead. ``cheapest_covers`` lists a few
alternatives in about increasing cost (Lawler's scheme: re-solve with one item of a found cover
banned), for hotspot.py's joint search over several hosts.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from functools import lru_cache

import numpy as np

STEPS = {1: (2000, 0), 2: (120, 120)}
COARSE = {1: (400, 0), 2: (40, 40)}  # for the many solves of shadow.py
TOL = 1e-9
EXACT_MAX_ITEMS = 12  # up to this many items, every subset is tried (4,096)


def min_cost_cover(
    demand: np.ndarray, need: np.ndarray, cost: np.ndarray, coarse: bool = False
) -> np.ndarray | None:
    """Indices (sorted) of a cover of ``need`` by rows of ``demand`` (n, k) at near-minimum total ``cost``.

    None when even all items together do not cover ``need``. Columns with need ≤ 0 are ignored.
    """
    need = np.asarray(need, dtype=np.float64).reshape(-1)
    demand = np.asarray(demand, dtype=np.float64).reshape(len(cost), need.size)
    cols = need > 0
    demand, need = demand[:, cols], need[cols]
    if need.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(demand.sum(axis=0) < need * (1 - TOL)):
        return None
    if need.size > 2:
        raise ValueError("at most two resources are covered at once")
    cost = np.asarray(cost, dtype=np.float64)
    ok = np.isfinite(cost)
    if not covers(demand[ok], need):
        return None
    ok &= cost <= _upper_bound(demand, need, np.where(ok, cost, np.inf)) * (1 + 1e-12)
    idx = np.flatnonzero(ok)
    d, c = demand[ok], cost[ok]
    if idx.size <= EXACT_MAX_ITEMS:  # few items: try every subset
        return np.sort(idx[_exhaustive(d, need, c)])
    grid = (COARSE if coarse else STEPS)[need.size]
    found = _dp(d, need, c, grid, np.floor)
    best = found if found is not None else _greedy(d, need, c)
    if not coarse:  # also round to nearest (may fall short: completed greedily), keep the cheaper
        best = _improve(d, need, c, best)
        near = _dp(d, need, c, grid, np.round)
        if near is not None:
            near = _improve(d, need, c, _complete(d, need, c, near))
            if c[near].sum() < c[best].sum():
                best = near
    return np.sort(idx[best])


def covers(demand: np.ndarray, need: np.ndarray) -> bool:
    return bool(np.all(demand.sum(axis=0) >= need * (1 - TOL)))


def _upper_bound(demand: np.ndarray, need: np.ndarray, cost: np.ndarray) -> float:
    """The cost of some cover (``cost`` inf for items not allowed): the cheapest single item that
    covers alone, else a greedy cover; inf when there is none."""
    alone = np.all(demand >= need * (1 - TOL), axis=1) & np.isfinite(cost)
    if alone.any():
        return float(cost[alone].min())
    ok = np.isfinite(cost)
    chosen = _greedy(demand[ok], need, cost[ok])
    return float(cost[ok][chosen].sum()) if covers(demand[ok][chosen], need) else np.inf


@lru_cache(maxsize=EXACT_MAX_ITEMS + 1)
def _subsets(n: int) -> np.ndarray:
    """(2^n, n) 0/1 rows: every subset of n items."""
    subsets = ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(np.float64)
    subsets.flags.writeable = False
    return subsets


def _exhaustive(demand: np.ndarray, need: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """The cheapest cover among all 2^n subsets (n ≤ EXACT_MAX_ITEMS), as a bool mask."""
    subsets = _subsets(len(cost))
    ok = np.all(subsets @ demand >= need * (1 - TOL), axis=1)
    total = np.where(ok, subsets @ cost, np.inf)
    return subsets[int(np.argmin(total))] > 0


def _complete(demand: np.ndarray, need: np.ndarray, cost: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Add items (best relief per cost first) until ``chosen`` truly covers ``need``."""
    chosen = chosen.copy()
    while not covers(demand[chosen], need):
        left = np.maximum(need - demand[chosen].sum(axis=0), 0.0)
        relief = (np.minimum(demand, left) / need).sum(axis=1)
        score = np.where(chosen | (relief <= 0), -np.inf, relief / np.maximum(cost, 1e-12))
        i = int(np.argmax(score))
        if not np.isfinite(score[i]):
            break
        chosen[i] = True
    return chosen


def _dp(
    demand: np.ndarray,
    need: np.ndarray,
    cost: np.ndarray,
    grid: tuple[int, int],
    rounding: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray | None:
    """0/1 knapsack over coverage steps; ``np.floor`` steps give true covers, ``np.round`` may not."""
    n, k = demand.shape
    b1, b2 = grid
    steps = rounding(demand / (need * (1 - TOL)) * np.array([b1, b2][:k]) + 1e-9).astype(np.int64)
    steps = np.minimum(steps, [b1, b2][:k])
    u1 = steps[:, 0]
    u2 = steps[:, 1] if k == 2 else np.zeros(n, dtype=np.int64)
    dp = np.full((b1 + 1, b2 + 1), np.inf)
    dp[0, 0] = 0.0
    history = [dp]
    for i in range(n):
        a, b = int(u1[i]), int(u2[i])
        if a or b:
            dp = np.minimum(dp, _shift(_shift(dp + cost[i], a, 0), b, 1))
        history.append(dp)
    if not np.isfinite(dp[b1, b2]):
        return None
    chosen = np.zeros(n, dtype=bool)
    x, y = b1, b2
    for i in range(n - 1, -1, -1):
        before, after = history[i], history[i + 1]
        if before[x, y] <= after[x, y]:
            continue
        chosen[i] = True
        a, b = int(u1[i]), int(u2[i])
        xs = range(x - a, x - a + 1) if x < b1 else range(max(0, b1 - a), b1 + 1)
        ys = range(y - b, y - b + 1) if y < b2 else range(max(0, b2 - b), b2 + 1)
        block = before[np.ix_(list(xs), list(ys))]
        px, py = np.unravel_index(int(np.argmin(block)), block.shape)
        x, y = xs[int(px)], ys[int(py)]
    return chosen


def _shift(grid: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Move coverage up by ``k`` steps along ``axis``, capping at the last step (min over what lands)."""
    if k == 0:
        return grid
    g = grid if axis == 0 else grid.T
    n = g.shape[0]
    out = np.full_like(g, np.inf)
    if k < n:
        out[k:] = g[: n - k]
    out[n - 1] = np.minimum(out[n - 1], g[max(n - k, 0) :].min(axis=0))
    return out if axis == 0 else out.T


def _greedy(demand: np.ndarray, need: np.ndarray, cost: np.ndarray) -> np.ndarray:
    chosen = np.zeros(len(cost), dtype=bool)
    left = need.copy()
    while np.any(left > need * TOL):
        relief = (np.minimum(demand, np.maximum(left, 0)) / need).sum(axis=1)
        score = np.where(chosen | (relief <= 0), -np.inf, relief / np.maximum(cost, 1.0))
        i = int(np.argmax(score))
        if not np.isfinite(score[i]):
            break
        chosen[i] = True
        left -= demand[i]
    return chosen


def _pair_for(
    demand: np.ndarray, cost: np.ndarray, chosen: np.ndarray, short: np.ndarray, budget: float
) -> tuple[int, int] | None:
    """Two unchosen items that together cover ``short`` for less than ``budget`` (cheapest pair)."""
    free = np.flatnonzero(~chosen & (cost < budget))
    if free.size < 2 or free.size > 200:
        return None
    c = cost[free][:, None] + cost[free][None, :]
    ok = np.all(demand[free][:, None, :] + demand[free][None, :, :] >= short, axis=2) & (c < budget)
    ok &= np.triu(np.ones_like(ok), 1).astype(bool)
    if not ok.any():
        return None
    a, b = np.unravel_index(int(np.argmin(np.where(ok, c, np.inf))), ok.shape)
    return int(free[a]), int(free[b])


def _improve(demand: np.ndarray, need: np.ndarray, cost: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Local search: drop items not needed, then swap one chosen item for a cheaper one, until stable."""
    chosen = chosen.copy()
    order = np.lexsort((np.arange(len(cost)), -cost))  # most expensive first
    for _ in range(4 * len(cost) + 4):
        total = demand[chosen].sum(axis=0)
        changed = False
        for i in order:
            if chosen[i] and np.all(total - demand[i] >= need * (1 - TOL)):
                chosen[i] = False
                total = total - demand[i]
                changed = True
        for i in order:
            if not chosen[i]:
                continue
            short = need * (1 - TOL) - (total - demand[i])
            ok = ~chosen & (cost < cost[i]) & np.all(demand >= short, axis=1)
            if ok.any():
                j = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
                chosen[i], chosen[j] = False, True
                changed = True
                break
            swap = _pair_for(demand, cost, chosen, short, cost[i])
            if swap is not None:
                chosen[i] = False
                chosen[list(swap)] = True
                changed = True
                break
        if not changed:
            break
    return chosen


def cheapest_covers(demand: np.ndarray, need: np.ndarray, cost: np.ndarray, k: int) -> list[np.ndarray]:
    """Up to ``k`` distinct covers in about increasing cost (Lawler: ban one item of a found cover)."""
    first = min_cost_cover(demand, need, cost)
    if first is None:
        return []
    seen = {tuple(first.tolist())}
    heap: list[tuple[float, tuple[int, ...], frozenset[int]]] = [
        (float(cost[first].sum()), tuple(first.tolist()), frozenset())
    ]
    out: list[np.ndarray] = []
    while heap and len(out) < k:
        _, key, banned = heapq.heappop(heap)
        out.append(np.array(key, dtype=np.int64))
        for i in key:
            ban = banned | {i}
            priced = cost.astype(np.float64).copy()
            priced[list(ban)] = np.inf
            alt = min_cost_cover(demand, need, priced)
            if alt is None or tuple(alt.tolist()) in seen:
                continue
            seen.add(tuple(alt.tolist()))
            heapq.heappush(heap, (float(cost[alt].sum()), tuple(alt.tolist()), ban))
    return out
