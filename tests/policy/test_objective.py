"""Imbalance: weighted std-dev of normalised load; candidate scores equal recomputation; bounds hold."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.policy import objective
from balancer.policy.objective import Sums


def test_imbalance_is_weighted_mean_of_per_resource_std() -> None:
    load = np.array([[0.2, 0.5], [0.6, 0.5], [0.4, 0.8]])
    active = np.array([True, True, True])
    sigma = objective.resource_imbalance(load, active)
    assert np.allclose(sigma, [np.std([0.2, 0.6, 0.4]), np.std([0.5, 0.5, 0.8])])
    w = np.array([1.0, 3.0])
    assert objective.imbalance(load, active, w) == (sigma[0] + 3 * sigma[1]) / 4
    assert objective.imbalance(load, active, np.zeros(2)) == 0.0
    assert objective.imbalance(load[:1], active[:1], w) == 0.0


def test_improves_is_relative() -> None:
    assert objective.improves(0.2, 0.18, 0.1)
    assert not objective.improves(0.2, 0.1801, 0.1)
    assert not objective.improves(0.2, 0.2, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1.5), st.floats(0, 1.5), st.floats(1, 64), st.floats(1, 256)),
        min_size=2,
        max_size=8,
    ),
    st.tuples(st.floats(0, 8), st.floats(0, 32)),
    st.data(),
)
def test_after_moves_equals_recomputation_and_bound_holds(hosts, demand, data) -> None:  # type: ignore[no-untyped-def]
    n = len(hosts)
    cap = np.array([[h[2], h[3]] for h in hosts])
    load = np.array([[h[0], h[1]] for h in hosts])
    s = data.draw(st.integers(0, n - 1))
    t = data.draw(st.integers(0, n - 1).filter(lambda x: x != s))
    d = np.array(demand)
    w = np.array([1.0, 2.0])
    active = np.ones(n, dtype=bool)
    sums = Sums.of(load, active)
    a, b = d / cap[s], d / cap[t]
    got = float(objective.after_moves(sums, w, load[s], a, load[t], b))
    after = load.copy()
    after[s] -= a
    after[t] += b
    assert np.isclose(got, objective.imbalance(after, active, w), atol=1e-7)  # one-pass variance near 0
    inv = 1.0 / cap
    lb = objective.lower_bound_after(
        sums, w, load[s][None], a[None], d[None], load.min(axis=0), inv.min(axis=0), inv.max(axis=0)
    )
    assert lb[0] <= got + 1e-9
