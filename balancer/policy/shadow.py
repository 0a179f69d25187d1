"""Shadow prices of target capacity for hotspot relief (Lagrangian relaxation, subgradient steps).

Relieving several hot hosts one after the other lets the first take the room the next one needs (a
VM that is cheap to copy may use the only target able to take another host's VM). Relaxing the target
capacity rows of the joint problem (bench/exact.py writes it out) with multipliers λ[t, r] ≥ 0 makes
the hosts independent: each solves its own minimum-cost cover with the price of VM v on target t set
to ``bytes[v, t] + Σ_r λ[t, r] · demand[v, r] / usable[t, r]``. Subgradient steps raise λ where the
relaxed covers together overfill a target and lower it where they leave room (step = θ · gap / |g|²,
θ halving when the bound stalls). The prices then guide one more relief attempt in hotspot.py, which
still checks real capacity at every move; the plan keeps whichever attempt is best.

Units: λ in bytes per unit of normalised load (the whole usable capacity of a target = 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from balancer.policy.cover import min_cost_cover

ITERATIONS = 12


def inverse_capacity(cap: np.ndarray) -> np.ndarray:
    """(H, 3) 1 / usable capacity; 0 where the capacity is unknown (infinite) or 0."""
    finite = np.isfinite(cap) & (cap > 0)
    return np.divide(1.0, cap, out=np.zeros_like(cap), where=finite)


def adjusted(bytes_: np.ndarray, demand: np.ndarray, inv: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """(k, H) bytes plus the shadow price of the capacity each VM would take on each target."""
    return np.asarray(bytes_ + np.einsum("kr,hr->kh", demand, inv * lam))


def shadow_prices(
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    free: np.ndarray,
    inv: np.ndarray,
    upper: float,
) -> np.ndarray:
    """(H, 3) multipliers; ``problems`` per hot host: demand (k,3), feasible (k,H), bytes (k,H), need (2,).

    ``free`` (H, 3) is the room under each target's marks; ``upper`` an upper bound of the joint optimum
    (bytes), which sets the step size.
    """
    n_h = free.shape[0]
    room = np.where(np.isfinite(free), np.maximum(free, 0.0), 0.0) * inv
    lam = np.zeros((n_h, 3))
    theta, best, stall = 1.0, -np.inf, 0
    for _ in range(ITERATIONS):
        load = np.zeros((n_h, 3))
        bound = -float((lam * room).sum())
        for demand, rows, bytes_, need in problems:
            price = np.where(rows, adjusted(bytes_, demand, inv, lam), np.inf)
            t = np.argmin(price, axis=1)
            p = price[np.arange(t.size), t]
            pick = min_cost_cover(demand[:, :2], need, p, coarse=True)
            if pick is None:
                continue
            bound += float(p[pick].sum())
            np.add.at(load, t[pick], demand[pick] * inv[t[pick]])
        g = load - room
        if bound > best * (1 + 1e-6) + 1e-9:
            best, stall = bound, 0
        else:
            stall += 1
            if stall >= 3:
                theta, stall = theta / 2, 0
        active = (g > 1e-12) | (lam > 0)
        norm = float((g[active] ** 2).sum())
        if norm <= 0 or not np.any(g > 1e-12):
            break
        step = theta * max(upper - bound, 0.01 * abs(upper)) / norm
        lam = np.maximum(0.0, lam + step * g)
    return lam
