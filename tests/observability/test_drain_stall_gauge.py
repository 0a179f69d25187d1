"""balancer_drain_ticks_without_progress: counted per drains update (one per tick), reset by any progress."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from balancer.metrics.export import DrainGauge, Metrics

GIB = 1024**3


def ticks(metrics: Metrics) -> dict[str, float]:
    out = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("balancer_drain_ticks_without_progress{"):
            host = line.split('host="', 1)[1].split('"', 1)[0]
            out[host] = float(line.rsplit(" ", 1)[1])
    return out


def gauge(vms: int, gib: int, blocked: int = 0) -> DrainGauge:
    return DrainGauge(vms_remaining=vms, bytes_remaining=gib * GIB, eta_seconds=None, blocked_vms=blocked)


def test_ticks_without_progress_count_up_and_reset_on_progress() -> None:
    metrics = Metrics(CollectorRegistry())
    for expected in (0, 1, 2, 3):
        metrics.state.update(drains={"h1": gauge(3, 30)})
        assert ticks(metrics) == {"h1": expected}
    metrics.state.update(drains={"h1": gauge(3, 29)})  # bytes fell (a VM's disk shrank, or one moved)
    assert ticks(metrics) == {"h1": 0}
    metrics.state.update(drains={"h1": gauge(3, 29)})
    metrics.state.update(drains={"h1": gauge(2, 29)})  # a VM left
    assert ticks(metrics) == {"h1": 0}


def test_migration_traffic_is_progress_and_a_finished_drain_is_not_stalled() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.state.update(drains={"h1": gauge(2, 20), "h2": gauge(0, 0)})
    metrics.state.update(host_bandwidth={"h1": 50e6})
    for _ in range(5):  # a big VM copying: nothing left yet, but bytes flow
        metrics.state.update(drains={"h1": gauge(2, 20), "h2": gauge(0, 0)})
    assert ticks(metrics) == {"h1": 0, "h2": 0}
    metrics.state.update(host_bandwidth={})
    metrics.state.update(drains={"h1": gauge(2, 20), "h2": gauge(0, 0)})
    assert ticks(metrics) == {"h1": 1, "h2": 0}


def test_a_host_that_stops_draining_is_forgotten() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.state.update(drains={"h1": gauge(2, 20)})
    metrics.state.update(drains={"h1": gauge(2, 20)})
    metrics.state.update(drains={})
    assert ticks(metrics) == {}
    metrics.state.update(drains={"h1": gauge(2, 20)})  # drained again later: counted afresh
    assert ticks(metrics) == {"h1": 0}
