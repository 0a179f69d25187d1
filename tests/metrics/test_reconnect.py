"""Reconnecting to a host that comes back, with exponential backoff on the injected clock."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testdriver_hosts import TESTDRIVER

from balancer.metrics.args import CollectionArgs
from balancer.metrics.collector import Collector
from balancer.metrics.reconnect import Backoff, delay
from balancer.metrics.source import HostEndpoint
from balancer.model import HostState


def test_host_comes_back_after_the_backoff_and_not_before(tmp_path: Path) -> None:
    path = tmp_path / "late.xml"  # the host is "down" until its file exists
    args = CollectionArgs(reconnect_min_seconds=1, reconnect_max_seconds=30)
    with Collector.for_endpoints([HostEndpoint("late", f"test://{path}")], args) as c:
        assert c.tick(0.0).host("late").state == HostState.DOWN  # failure 1: next try at 1
        assert c.tick(1.0).host("late").state == HostState.DOWN  # failure 2: next try at 1 + 2
        shutil.copy(TESTDRIVER / "host-c.xml", path)
        down = c.tick(2.9)  # it is back, but we wait out the backoff
        assert down.host("late").state == HostState.DOWN
        assert down.host("late").error is not None and "connect" in down.host("late").error
        up = c.tick(3.0)
    assert up.host("late").state == HostState.UP
    assert up.host("late").error is None
    assert [v.name for v in up.vms] == ["lone"]


@given(st.integers(min_value=1, max_value=200), st.floats(0.01, 100), st.floats(0.01, 3600))
def test_delay_doubles_from_min_and_never_exceeds_max(failures: int, lo: float, hi: float) -> None:
    d = delay(failures, lo, hi)
    assert 0 < d <= hi
    assert d == min(hi, lo * 2 ** (failures - 1)) or d == hi
    assert delay(failures + 1, lo, hi) >= d


@given(st.lists(st.booleans(), max_size=30), st.floats(0.1, 10), st.floats(10, 100))
def test_backoff_resets_on_success_and_is_ready_exactly_at_its_instant(
    outcomes: list[bool], lo: float, hi: float
) -> None:
    b, now = Backoff(), 0.0
    for ok in outcomes:
        assert b.ready(now) or b.failures > 0
        b = b.succeeded() if ok else b.failed(now, lo, hi)
        if ok:
            assert b == Backoff() and b.ready(now)
        else:
            assert not b.ready(now) and b.ready(b.next_attempt_at)
            assert b.next_attempt_at - now == pytest.approx(delay(b.failures, lo, hi))
            now = b.next_attempt_at
