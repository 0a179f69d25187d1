"""Minimum-cost cover (hotspot selection) against brute force on small instances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.policy.cover import covers, min_cost_cover


def brute(demand: np.ndarray, need: np.ndarray, cost: np.ndarray) -> float | None:
    best = None
    for k in range(len(cost) + 1):
        for combo in itertools.combinations(range(len(cost)), k):
            idx = list(combo)
            if covers(demand[idx], need) and (best is None or cost[idx].sum() < best):
                best = float(cost[idx].sum())
    return best


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(1, 10))
def test_cover_is_a_cover_and_near_optimal(seed: int, k: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    demand = rng.uniform(0.1, 4.0, size=(n, k))
    cost = rng.uniform(1.0, 50.0, size=n)
    need = demand.sum(axis=0) * rng.uniform(0.1, 0.9, size=k)
    pick = min_cost_cover(demand, need, cost)
    best = brute(demand, need, cost)
    assert best is not None and pick is not None
    assert covers(demand[pick], need)
    assert cost[pick].sum() <= best * 1.10 + 1e-9


@pytest.mark.parametrize("seed", range(12))
def test_dp_path_on_more_items_is_near_optimal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 16, 1 + seed % 2  # above the exhaustive limit: the DP + local search path
    demand = rng.uniform(0.1, 4.0, size=(n, k))
    cost = rng.uniform(1.0, 50.0, size=n)
    need = demand.sum(axis=0) * rng.uniform(0.1, 0.6, size=k)
    pick = min_cost_cover(demand, need, cost)
    subsets = ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(float)
    ok = np.all(subsets @ demand >= need * (1 - 1e-9), axis=1)
    best = float((subsets @ cost)[ok].min())
    assert pick is not None and covers(demand[pick], need)
    assert cost[pick].sum() <= best * 1.10 + 1e-9


def test_no_cover_when_everything_together_is_short() -> None:
    assert min_cost_cover(np.array([[1.0], [1.0]]), np.array([3.0]), np.array([1.0, 1.0])) is None


def test_nothing_needed_picks_nothing() -> None:
    assert min_cost_cover(np.array([[1.0, 2.0]]), np.array([0.0, -1.0]), np.array([5.0])).size == 0


def test_prefers_one_cheap_big_item_over_many() -> None:
    demand = np.array([[5.0], [1.0], [1.0], [1.0], [1.0], [1.0]])
    cost = np.array([3.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert min_cost_cover(demand, np.array([5.0]), cost).tolist() == [0]
