"""A host's chance to be over its CPU mark: a proper, heavy-tailed distribution of its VMs' sum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from balancer.policy.risk import HostRisk, over_chance, tail_cdf

z = st.floats(-50.0, 50.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(z, z)
def test_tail_cdf_is_a_symmetric_distribution_function(a: float, b: float) -> None:
    fa, fb = tail_cdf(np.array([a, b]))
    assert 0.0 <= fa <= 1.0
    assert (fa <= fb + 1e-15) if a <= b else (fb <= fa + 1e-15)
    assert tail_cdf(np.array([-a]))[0] == pytest.approx(1.0 - fa, abs=1e-12)


def test_tail_cdf_is_students_t4_at_unit_variance() -> None:
    x = np.linspace(-6, 6, 49)
    assert np.allclose(tail_cdf(x), stats.t.cdf(x * np.sqrt(2.0), 4), atol=1e-12)
    var, _ = integrate.quad(
        lambda u: u * u * stats.t.pdf(u * np.sqrt(2.0), 4) * np.sqrt(2.0), -np.inf, np.inf
    )
    assert var == pytest.approx(1.0, rel=1e-6)
    # heavier tails than the normal's: three standard deviations out is ~4× as likely
    assert 1.0 - tail_cdf(np.array([3.0]))[0] > 3 * (1.0 - stats.norm.cdf(3.0))


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 20.0), st.floats(0.0, 20.0), st.floats(0.0, 9.0), st.floats(1.0, 14.0))
def test_more_load_or_more_spread_under_the_mark_means_more_risk(
    mean: float, more: float, var: float, mark: float
) -> None:
    p = over_chance(np.array([mean, mean + more]), np.array([var, var]), np.array([mark, mark]))
    assert p[0] <= p[1] + 1e-12
    if mean < mark:
        wider = over_chance(np.array([mean]), np.array([var + 1.0]), np.array([mark]))[0]
        assert p[0] <= wider + 1e-12


def test_without_spread_the_chance_is_a_step_at_the_mark() -> None:
    p = over_chance(np.array([9.0, 11.0, 10.0]), np.zeros(3), np.full(3, 10.0))
    assert p.tolist() == [0.0, 1.0, 0.0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 4.0), st.floats(0.0, 2.0), st.integers(0, 3)), min_size=1, max_size=12),
    st.data(),
)
def test_a_shift_equals_recomputing_the_hosts(
    vms: list[tuple[float, float, int]], data: st.DataObject
) -> None:
    level = np.array([v[0] for v in vms])
    var = np.array([v[1] for v in vms])
    home = np.array([v[2] for v in vms])
    mark = np.full(4, 6.0)
    risk = HostRisk.of(level, var, home, mark)
    i = data.draw(st.integers(0, len(vms) - 1))
    t = data.draw(st.integers(0, 3).filter(lambda h: h != home[i]))
    risk.shift(int(home[i]), t, float(level[i]), float(var[i]))
    home[i] = t
    again = HostRisk.of(level, var, home, mark)
    assert np.allclose(risk.mean, again.mean) and np.allclose(risk.var, again.var)
    assert np.allclose(risk.chance(), again.chance())
