"""Imbalance (weighted std-dev of normalised load), overload, and the minimum-improvement test.

Definitions (units: fractions of usable capacity):

* load ``L[h, r] = used[h, r] / usable[h, r]`` for r in (cpu, memory); a host with no usable capacity
  has load 0 (it is never active).
* per-resource imbalance ``σ_r = sqrt(mean_h (L[h, r] − mean_h L[h, r])²)``: the population standard
  deviation over the *active* hosts (UP, not draining, not excluded); 0 with fewer than two.
* imbalance ``I = (w_cpu σ_cpu + w_mem σ_mem) / (w_cpu + w_mem)``: the weighted sum of the per-resource
  std-devs (as OpenStack Watcher's workload_stabilization does), with the weights
  (``policy.cpu_weight``, ``policy.memory_weight``) normalised to sum to 1, so ``target_imbalance`` is
  in the units of one std-dev. All weights 0 gives I = 0 (balancing off). Disk is a hard capacity only.
* overloaded: some resource above its high-water mark (``used > mark``).
* a move improves enough when ``I_new ≤ I_old · (1 − min_improvement)`` and ``I_new < I_old``.

Reported values use the two-pass std-dev. For candidate evaluation the std-devs come from running
sums S1 = ΣL, S2 = ΣL² over n active hosts: moving demand d from s to t changes only L_s (by
−a = −d/usable_s, when s is active) and L_t (by +b = d/usable_t), so every VM × target candidate
is scored with a few array operations (the one-pass variance S2/n − mean² loses digits near 0: σ
is then off by up to ~1e-8, which only matters for ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESOURCES = ("cpu", "memory")  # the imbalance's resources, in Resource order
EPS = 1e-9  # relative tolerance of capacity comparisons (float sums of many VMs)


def loads(used: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """(H, 2) normalised cpu/memory load; 0 where the usable capacity is 0."""
    u, c = used[:, :2], cap[:, :2]
    return np.divide(u, c, out=np.zeros_like(u, dtype=np.float64), where=c > 0)


def resource_imbalance(load: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(2,) population std-dev of cpu/memory load over the active hosts."""
    return row_imbalance(np.ascontiguousarray(load[active].T))  # (2, n): rows reduce faster than columns


def row_imbalance(rows: np.ndarray) -> np.ndarray:
    """(2,) population std-dev of each row of ``rows`` (2, n): the active hosts' cpu and memory loads."""
    n = rows.shape[1]
    if n < 2:
        return np.zeros(2)
    dev = rows - rows.mean(axis=1, keepdims=True)  # two passes: exact where the std-dev is near 0
    return np.sqrt(np.einsum("rn,rn->r", dev, dev) / n)


def combine(sigma: np.ndarray, weights: np.ndarray) -> np.ndarray | float:
    """Weighted imbalance from per-resource std-devs (last axis = resource); weights normalised to 1."""
    total = float(weights.sum())
    if total <= 0:
        return np.zeros(sigma.shape[:-1]) if sigma.ndim > 1 else 0.0
    return np.asarray(sigma @ (weights / total)) if sigma.ndim > 1 else float(sigma @ weights) / total


def imbalance(load: np.ndarray, active: np.ndarray, weights: np.ndarray) -> float:
    return float(combine(resource_imbalance(load, active), weights))


def improves(old: float, new: float, margin: float) -> bool:
    """True when ``new`` cuts ``old`` by at least the relative ``margin``."""
    return new < old and new <= old * (1.0 - margin)


def overloaded(used: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """(H, 2) bool: cpu/memory above the high-water mark."""
    return np.asarray(used[:, :2] > mark[:, :2] * (1.0 + EPS))


def fits(used: np.ndarray, add: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """Elementwise: ``used + add`` stays at or under ``mark`` (with a relative float tolerance)."""
    return np.asarray(used + add <= mark * (1.0 + EPS) + 1e-6)


@dataclass(frozen=True)
class Sums:
    """Running sums of the active hosts' loads, per resource: n, S1 = ΣL, S2 = ΣL²."""

    n: int
    s1: np.ndarray  # (2,)
    s2: np.ndarray  # (2,)

    @classmethod
    def of(cls, load: np.ndarray, active: np.ndarray) -> Sums:
        return cls.of_rows(np.ascontiguousarray(load[active].T))  # (2, n): rows reduce faster

    @classmethod
    def of_rows(cls, rows: np.ndarray) -> Sums:
        """From the active hosts' loads as rows (2, n)."""
        return cls(int(rows.shape[1]), rows.sum(axis=1), np.einsum("rn,rn->r", rows, rows))


def after_moves(
    sums: Sums,
    weights: np.ndarray,
    src_load: np.ndarray,
    src_step: np.ndarray,
    tgt_load: np.ndarray,
    tgt_step: np.ndarray,
) -> np.ndarray:
    """Imbalance after each candidate move (broadcast over any leading shape).

    ``src_load``/``src_step``: (..., 2) the source's load and the load it loses (a = d/usable_s; pass 0
    for a source that is not active). ``tgt_load``/``tgt_step``: (..., 2) the target's load and the load
    it gains (b = d/usable_t). Source and target must differ.
    """
    n = sums.n
    if n < 2:
        return np.zeros(np.broadcast_shapes(src_load.shape, tgt_load.shape)[:-1])
    a, b = src_step, tgt_step
    d2 = a * (a - 2.0 * src_load) + b * (b + 2.0 * tgt_load)
    d1 = b - a
    mean = (sums.s1 + d1) / n
    var = (sums.s2 + d2) / n - mean * mean
    sigma = np.sqrt(np.maximum(var, 0.0))
    return np.asarray(combine(sigma, weights))


def lower_bound_after(
    sums: Sums,
    weights: np.ndarray,
    src_load: np.ndarray,
    src_step: np.ndarray,
    demand: np.ndarray,
    tgt_load_min: np.ndarray,
    inv_cap_min: np.ndarray,
    inv_cap_max: np.ndarray,
) -> np.ndarray:
    """(V,) a lower bound of the imbalance after moving each VM to *any* active target.

    The variance after a move is increasing in the target's load L_t (∂/∂L_t = 2b/n ≥ 0) and convex in
    the target's step b = d/usable_t, so with L_t at the smallest active load and b anywhere in
    [d/usable_max, d/usable_min] its minimum is a lower bound for every real target. Used to skip VMs
    that cannot beat the best candidate found so far (exact pruning, not a heuristic).
    """
    n = sums.n
    if n < 2:
        return np.zeros(demand.shape[0])
    a = src_step
    base2 = sums.s2 + a * (a - 2.0 * src_load)
    base1 = sums.s1 - a
    b_lo, b_hi = demand * inv_cap_min, demand * inv_cap_max
    # unconstrained minimiser of var(b) = (base2 + 2 L b + b²)/n − ((base1 + b)/n)²
    b_star = (base1 / n - tgt_load_min) / (1.0 - 1.0 / n)
    b = np.clip(b_star, b_lo, b_hi)
    mean = (base1 + b) / n
    var = (base2 + b * (b + 2.0 * tgt_load_min)) / n - mean * mean
    sigma = np.sqrt(np.maximum(var, 0.0))
    return np.asarray(combine(sigma, weights))
