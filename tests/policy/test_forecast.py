"""Each VM's forecast: the long mean unless the recent one moved beyond noise; no history, no forecast."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.policy.forecast import Forecast, levels
from tests.builders import vm

cores = st.floats(0.0, 16.0, allow_nan=False)


def one(recent: float, w: int, long: float, n: int, noise: float, std: float = 0.0) -> Forecast:
    arr = [np.array([x], dtype=np.float64) for x in (recent, w, long, n, noise, std)]
    return levels(*arr)


@settings(max_examples=200, deadline=None)
@given(cores, st.integers(1, 10), cores, st.integers(2, 48), st.floats(0.0, 4.0), st.floats(0.0, 4.0))
def test_the_level_lies_between_the_long_and_the_recent_mean(
    recent: float, w: int, long: float, n: int, noise: float, std: float
) -> None:
    f = one(recent, w, long, max(n, w), noise, std)
    lo, hi = min(recent, long), max(recent, long)
    assert lo - 1e-9 <= f.level[0] <= hi + 1e-9
    assert 0.0 <= f.trust[0] <= 1.0
    assert f.error[0] >= noise * noise / max(n, w) - 1e-12  # never surer than the long mean
    assert f.noise[0] == noise


@settings(max_examples=200, deadline=None)
@given(cores, st.floats(0.05, 4.0), st.integers(2, 10), st.integers(12, 48), st.floats(0.0, 0.99))
def test_a_jump_within_the_noise_is_no_reason_to_plan_higher(
    long: float, noise: float, w: int, n: int, share: float
) -> None:
    """d² ≤ D = σ² (1/w − 1/n): what the recent mean shows is explained by noise, so the level is m_L."""
    d = share * noise * np.sqrt(1.0 / w - 1.0 / n)
    f = one(long + d, w, long, n, noise)
    assert f.level[0] == pytest.approx(long)
    assert f.trust[0] == 0.0


def test_a_step_far_beyond_the_noise_is_followed_at_once() -> None:
    # a VM that ran at 0.5 cores for 2 h and at 3 cores for the last 25 min, with 0.1 core of noise
    f = one(recent=3.0, w=5, long=(19 * 0.5 + 5 * 3.0) / 24, n=24, noise=0.1)
    assert f.trust[0] > 0.99 and f.level[0] == pytest.approx(3.0, abs=0.01)


def test_the_noisier_the_vm_the_less_its_recent_mean_counts() -> None:
    quiet = one(recent=2.0, w=5, long=1.0, n=24, noise=0.5)
    noisy = one(recent=2.0, w=5, long=1.0, n=24, noise=1.5)
    assert noisy.level[0] < quiet.level[0]
    assert noisy.error[0] > quiet.error[0]


def test_without_history_the_forecast_is_the_smoothed_mean_and_its_spread() -> None:
    f = Forecast.of([vm("a", cpu_cores=2.5, cpu_std_cores=0.7), vm("b", cpu_cores=1.0, cpu_samples=1)])
    assert f.level.tolist() == [2.5, 1.0]
    assert f.noise.tolist() == [0.7, 0.0]
    assert f.error.tolist() == [0.0, 0.0]


def test_the_snapshot_history_features_feed_the_forecast() -> None:
    spike = vm(
        "spike",
        cpu_cores=1.4,
        cpu_window_samples=5,
        cpu_history_cores=1.0,
        cpu_samples=24,
        cpu_noise_cores=1.0,
        cpu_std_cores=1.0,
    )
    f = Forecast.of([spike])
    # d = 0.4: d² = 0.16 is barely above D = 1 · (1/5 − 1/24) ≈ 0.158, so β ≈ 0.01: planned at ≈ 1.0
    assert f.trust[0] == pytest.approx(1 - (1 / 5 - 1 / 24) / 0.16)
    assert f.level[0] == pytest.approx(1.0 + 0.4 * f.trust[0])
