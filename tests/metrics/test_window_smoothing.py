"""Properties of the moving-window smoothing and the "hot for N ticks" streak (pure, hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from balancer.metrics.source import HostEndpoint, HostSample, NodeSample, VMSample
from balancer.metrics.window import VMWindow, WindowState, advance, hot_streak, mean, observe_vm, push

rates = st.lists(st.floats(0, 64, allow_nan=False), min_size=1, max_size=40)
windows = st.integers(1, 12)


def run(series: list[float], window: int) -> list[float]:
    """Feed per-second CPU rates through a VM's window; return the smoothed value after each rate."""
    w: VMWindow | None = None
    ns, out = 0, []
    w = observe_vm(w, "h", vm(ns), 0.0, window)
    for t, r in enumerate(series, start=1):
        ns += round(r * 1e9)
        w = observe_vm(w, "h", vm(ns), float(t), window)
        out.append(w.cpu_cores)
    return out


def vm(ns: int, uuid: str = "u", used: int = 1 << 30) -> VMSample:
    return VMSample(
        name=uuid,
        uuid=uuid,
        state="running",
        vcpus=64,
        memory_bytes=used,
        memory_used_bytes=used,
        cpu_time_ns=ns,
    )


@given(rates, windows)
def test_smoothed_value_is_the_mean_of_the_last_window_rates_and_within_their_bounds(
    series: list[float], window: int
) -> None:
    smoothed = run(series, window)
    for i, value in enumerate(smoothed):
        last = series[max(0, i + 1 - window) : i + 1]
        assert min(last) - 1e-6 <= value <= max(last) + 1e-6
        assert abs(value - sum(last) / len(last)) < 1e-6


@given(st.floats(0, 8), st.floats(0, 64), windows, st.integers(0, 10))
def test_a_single_spike_is_damped_by_the_window_and_gone_after_window_ticks(
    flat: float, spike: float, window: int, before: int
) -> None:
    series = [flat] * (before + window) + [spike] + [flat] * (window + 2)
    smoothed = run(series, window)
    at = before + window
    bound = flat + (spike - flat) / window if spike >= flat else flat
    for value in smoothed[at : at + window]:
        assert value <= bound + 1e-6
    for value in smoothed[at + window :]:
        assert abs(value - flat) < 1e-6


@given(st.floats(0, 4), st.floats(0.01, 4), st.floats(0, 1), st.integers(2, 12))
def test_a_spike_within_window_times_the_headroom_never_crosses_the_mark(
    flat: float, headroom: float, k: float, window: int
) -> None:
    mark = flat + headroom
    spike = flat + k * window * headroom  # up to `window` times above the mark's headroom
    smoothed = run([flat] * window + [spike] + [flat] * window, window)
    assert max(smoothed) <= mark + 1e-6


@given(st.floats(0, 1), st.floats(1.01, 10), windows, st.integers(0, 20))
def test_one_spike_is_hot_for_at_most_window_ticks(
    flat: float, spike: float, window: int, after: int
) -> None:
    smoothed = run([flat] * window + [spike] + [flat] * after, window)
    longest = max(hot_streak(smoothed[: i + 1], flat + 1e-6) for i in range(len(smoothed)))
    assert longest <= window


@given(st.lists(st.floats(0, 2), max_size=30), st.floats(0, 2))
def test_hot_streak_counts_the_newest_entries_above_the_mark(history: list[float], mark: float) -> None:
    n = hot_streak(history, mark)
    assert all(v > mark for v in history[len(history) - n :])
    assert n == len(history) or history[len(history) - n - 1] <= mark


@given(st.lists(st.floats(-1e6, 1e6), max_size=30), st.integers(0, 10))
def test_push_keeps_the_newest_size_values_in_order(values: list[float], size: int) -> None:
    out: tuple[float, ...] = ()
    for v in values:
        out = push(out, v, size)
    assert out == tuple(values[-size:]) if size else out == ()
    assert mean(()) == 0.0


def host(name: str, at: float, *vms: VMSample, ok: bool = True) -> HostSample:
    from balancer.errors import CollectError

    return HostSample(
        endpoint=HostEndpoint(name, "test:///default"),
        sampled_at=at,
        node=NodeSample(8, 1 << 34) if ok else None,
        vms=vms,
        error=None if ok else CollectError(name, "timeout", "no answer"),
    )


@given(st.integers(1, 6), st.integers(1, 8), st.integers(1, 15))
def test_host_history_is_the_sum_of_its_vms_smoothed_load_newest_last(
    vms: int, history: int, ticks: int
) -> None:
    state = WindowState()
    for t in range(ticks):
        samples = [
            host("h", float(t), *(vm(t * 500_000_000, f"u{i}", used=(i + 1) << 20) for i in range(vms)))
        ]
        state = advance(state, samples, window=3, history=history)
    h = state.hosts["h"]
    assert len(h.cpu_history) == len(h.memory_history) == min(ticks, history)
    if ticks >= 2:
        assert abs(h.cpu_history[-1] - 0.5 * vms) < 1e-6  # each VM used half a core
    assert h.memory_history[-1] == sum((i + 1) << 20 for i in range(vms))


def test_down_hosts_keep_their_state_and_vanished_vms_and_hosts_are_forgotten() -> None:
    s = advance(WindowState(), [host("a", 0, vm(0, "x"), vm(0, "y")), host("b", 0, vm(0, "z"))], 3, 3)
    s = advance(s, [host("a", 1, vm(10**9, "x")), host("b", 1, ok=False)], 3, 3)
    assert set(s.vms) == {("a", "x"), ("b", "z")}  # y is gone; z is kept while b is down
    assert s.hosts["b"].cpu_history == (0.0,)  # nothing appended for the failed tick
    s = advance(s, [host("a", 2, vm(2 * 10**9, "x"))], 3, 3)
    assert set(s.hosts) == {"a"} and set(s.vms) == {("a", "x")}


def spread_of(series: list[float], window: int, spread: int) -> list[VMWindow]:
    """Feed per-second CPU rates through a VM's window with a spread window; every window after each."""
    ns, out = 0, []
    w = observe_vm(None, "h", vm(ns), 0.0, window, spread)
    for t, r in enumerate(series, start=1):
        ns += round(r * 1e9)
        w = observe_vm(w, "h", vm(ns), float(t), window, spread)
        out.append(w)
    return out


@given(rates, windows, st.integers(0, 30))
def test_cpu_spread_is_the_std_dev_of_the_last_spread_rates_and_leaves_the_mean_alone(
    series: list[float], window: int, spread: int
) -> None:
    for i, w in enumerate(spread_of(series, window, spread)):
        last = series[max(0, i + 1 - spread) : i + 1] if spread else []
        if len(last) < 2:
            assert w.cpu_std_cores == 0.0
        else:
            m = sum(last) / len(last)
            std = (sum((x - m) ** 2 for x in last) / len(last)) ** 0.5
            assert abs(w.cpu_std_cores - std) < 1e-6 * max(1.0, std)
        mean_last = series[max(0, i + 1 - window) : i + 1]
        assert abs(w.cpu_cores - sum(mean_last) / len(mean_last)) < 1e-6


def test_a_steady_vm_has_no_spread_and_a_bursty_one_has_its_std_dev() -> None:
    (*_, steady) = spread_of([2.0] * 30, 5, 24)
    (*_, bursty) = spread_of([0.0, 4.0] * 15, 5, 24)
    assert steady.cpu_std_cores < 1e-6
    assert abs(bursty.cpu_std_cores - 2.0) < 1e-6
    assert len(bursty.spread) == 24 and len(bursty.cpu) == 5
