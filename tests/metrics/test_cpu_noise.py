"""A VM's sample noise (successive differences): a step of its level counts once, not as spread."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balancer.metrics.window import pstdev, successive_noise

values = st.lists(st.floats(0, 64, allow_nan=False), min_size=2, max_size=30)


@given(values, st.floats(-8, 8, allow_nan=False))
def test_noise_ignores_the_level(xs: list[float], shift: float) -> None:
    assert successive_noise([x + shift for x in xs]) == pytest.approx(successive_noise(xs), abs=1e-6)


@given(values)
def test_noise_is_bounded_by_twice_the_spread(xs: list[float]) -> None:
    # (a − b)² ≤ 2 (a − m)² + 2 (b − m)², summed: Σ diffs² ≤ 4 n σ², so noise² ≤ 2 n σ² / (n − 1)
    n = len(xs)
    assert successive_noise(xs) <= math.sqrt(2 * n / (n - 1)) * pstdev(xs) + 1e-9


def test_a_step_inflates_the_spread_but_not_the_noise() -> None:
    alternating = [1.0, 1.2] * 12
    step = [1.0, 1.2] * 6 + [3.0, 3.2] * 6
    assert successive_noise(step) < 0.5 < pstdev(step)
    assert successive_noise(alternating) == pytest.approx(0.2 / math.sqrt(2))


def test_fewer_than_two_values_have_no_noise() -> None:
    assert successive_noise([]) == successive_noise([5.0]) == 0.0
