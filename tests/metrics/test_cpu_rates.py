"""CPU load in cores from the delta of CPU time between two polls.

The test driver's ``virDomainGetInfo`` reports the wall clock as every domain's CPU time, whatever
its state, so between two real polls each running test VM uses exactly one core. That makes an
honest end-to-end check of the rate arithmetic; the edge cases run on the pure window functions.
"""

from __future__ import annotations

import time

import pytest
from testdriver_hosts import endpoint

from balancer.metrics.args import CollectionArgs
from balancer.metrics.collector import Collector
from balancer.metrics.libvirt_source import LibvirtSource
from balancer.metrics.source import HostEndpoint, HostSample, NodeSample, VMSample
from balancer.metrics.window import WindowState, advance, cpu_rate, observe_vm


def test_first_poll_has_no_rate_and_the_second_measures_one_core_per_running_test_vm() -> None:
    with Collector.for_endpoints([endpoint("host-a"), endpoint("host-b")], CollectionArgs(window=3)) as c:
        first = c.tick(time.time())
        time.sleep(0.5)
        second = c.tick(time.time())
    assert all(v.cpu_cores == 0.0 for v in first.vms)
    running = {v.name for v in second.vms if v.state == "running"}
    assert running == {"db1", "web1", "web2", "scratch", "app1"}
    for v in second.vms:
        expected = 1.0 if v.name in running else 0.0  # shut off (batch1) and paused (app2) use none
        assert v.cpu_cores == pytest.approx(expected, abs=0.1), v.name
    a = second.host("host-a")
    assert a.cpu_history[0] == 0.0
    assert a.cpu_history[1] == pytest.approx(4.0, abs=0.4)
    assert second.host("host-b").cpu_history[-1] == pytest.approx(1.0, abs=0.1)


def test_back_to_back_polls_time_each_counter_where_it_was_read() -> None:
    # The test driver's counter comes from a per-domain call made after the bulk stats, milliseconds
    # later and by a varying amount; divided by the host's poll time, two polls 10 ms apart read a
    # one-core VM as 0.14-2.6 cores (about a third of the rates off by more than 35 %). Each counter
    # carries the time it was read, so the rate stays near one core however close the polls are.
    rates: list[float] = []
    with LibvirtSource([endpoint("host-a"), endpoint("host-b")]) as source:
        for _ in range(10):
            state = advance(WindowState(), source.collect(time.time()), 1, 1)
            second = source.collect(time.time())
            state = advance(state, second, 1, 1)
            for s in second:
                for v in s.vms:
                    w = state.vm(s.name, v.uuid)
                    if v.state == "running" and w is not None:
                        rates += w.cpu
    assert len(rates) == 50
    assert all(r == pytest.approx(1.0, abs=0.35) for r in rates), sorted(rates)


def vm(
    cpu_ns: int | None, state: str = "running", uuid: str = "u1", read_at: float | None = None
) -> VMSample:
    return VMSample(
        name="vm",
        uuid=uuid,
        state=state,
        vcpus=4,
        memory_bytes=1 << 30,
        memory_used_bytes=1 << 29,
        cpu_time_ns=cpu_ns,
        cpu_sampled_at=read_at,
    )


def host(name: str, at: float, *vms: VMSample) -> HostSample:
    return HostSample(
        endpoint=HostEndpoint(name, "test:///default"), sampled_at=at, node=NodeSample(8, 1 << 34), vms=vms
    )


def test_rate_is_cpu_seconds_per_second() -> None:
    assert cpu_rate(0, 10.0, 3_000_000_000, 12.0) == pytest.approx(1.5)
    assert cpu_rate(None, None, 5, 1.0) is None
    assert cpu_rate(10, 1.0, 5, 2.0) is None  # counter went backwards: the domain restarted
    assert cpu_rate(5, 2.0, 10, 2.0) is None  # no time passed


def test_the_sources_clock_divides_not_the_tick_time() -> None:
    state = advance(WindowState(), [host("h", 100.0, vm(0))], window=4, history=4)
    state = advance(state, [host("h", 102.0, vm(4_000_000_000))], window=4, history=4)
    w = state.vm("h", "u1")
    assert w is not None and w.cpu == (2.0,)


def test_a_counter_read_apart_from_the_hosts_poll_divides_by_its_own_reading_times() -> None:
    # host polls 1.0 s apart, but the counter was read 0.30 s and 1.05 s after the first: 0.75 s
    state = advance(WindowState(), [host("h", 10.0, vm(0, read_at=10.3))], window=4, history=4)
    state = advance(state, [host("h", 11.0, vm(750_000_000, read_at=11.05))], window=4, history=4)
    w = state.vm("h", "u1")
    assert w is not None and w.cpu == (pytest.approx(1.0),)


def test_a_restart_adds_no_sample_and_restarts_the_baseline() -> None:
    w = observe_vm(None, "h", vm(10_000_000_000), 0.0, 5)
    w = observe_vm(w, "h", vm(12_000_000_000), 1.0, 5)
    w = observe_vm(w, "h", vm(1_000_000_000), 2.0, 5)  # restarted: counter is small again
    assert w.cpu == (2.0,)
    w = observe_vm(w, "h", vm(1_500_000_000), 3.0, 5)
    assert w.cpu == (2.0, 0.5)


def test_vms_that_are_not_running_add_zero_even_if_the_counter_moves() -> None:
    w = observe_vm(None, "h", vm(0), 0.0, 5)
    w = observe_vm(w, "h", vm(5_000_000_000, state="paused"), 1.0, 5)
    assert w.cpu == (0.0,)


def test_unknown_cpu_time_adds_nothing() -> None:
    w = observe_vm(None, "h", vm(None), 0.0, 5)
    w = observe_vm(w, "h", vm(None), 1.0, 5)
    assert (w.cpu, w.cpu_cores) == ((), 0.0)


def test_a_migrated_vm_keeps_its_window_on_the_new_host_but_needs_a_new_baseline() -> None:
    s = WindowState()
    s = advance(s, [host("h1", 0.0, vm(0)), host("h2", 0.0)], 5, 5)
    s = advance(s, [host("h1", 1.0, vm(3_000_000_000)), host("h2", 1.0)], 5, 5)
    s = advance(s, [host("h1", 2.0), host("h2", 2.0, vm(50))], 5, 5)  # arrived on h2, counter restarted
    moved = s.vm("h2", "u1")
    assert moved is not None and moved.cpu == (3.0,) and moved.cpu_time_ns == 50
    assert s.vm("h1", "u1") is None
    assert s.hosts["h2"].cpu_history == (0.0, 0.0, 3.0)
    s = advance(s, [host("h1", 3.0), host("h2", 3.0, vm(1_000_000_050))], 5, 5)
    assert s.vm("h2", "u1").cpu == (3.0, 1.0)  # type: ignore[union-attr]


def test_a_migrated_vm_keeps_its_cpu_spread_on_the_new_host() -> None:
    s = WindowState()
    s = advance(s, [host("h1", 0.0, vm(0)), host("h2", 0.0)], 2, 5, spread=4)
    s = advance(s, [host("h1", 1.0, vm(1_000_000_000)), host("h2", 1.0)], 2, 5, spread=4)
    s = advance(s, [host("h1", 2.0, vm(4_000_000_000)), host("h2", 2.0)], 2, 5, spread=4)
    s = advance(s, [host("h1", 3.0), host("h2", 3.0, vm(50))], 2, 5, spread=4)  # arrived on h2
    moved = s.vm("h2", "u1")
    assert moved is not None and moved.spread == (1.0, 3.0) and moved.cpu_std_cores == pytest.approx(1.0)
