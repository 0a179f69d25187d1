"""The service exports the config its alert rules compare with, its process metrics, and no _created."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import generate_latest

from balancer.daemon import Running


def test_the_service_exports_its_thresholds_and_interval(make_service: Callable[..., Running]) -> None:
    running = make_service(
        thresholds={"cpu_high": 0.7, "memory_high": 0.9, "target_imbalance": 0.08, "hold_ticks": 1},
        collection={"interval_seconds": 30, "window": 1},
    )
    text = generate_latest(running.metrics.registry).decode()
    assert 'balancer_config_high_water_ratio{resource="cpu"} 0.7' in text
    assert 'balancer_config_high_water_ratio{resource="memory"} 0.9' in text
    assert "balancer_config_target_imbalance 0.08" in text
    assert "balancer_config_collection_interval_seconds 30.0" in text
    for host in ("a", "b", "c"):  # every configured host's error series, at 0 before any failure
        assert f'balancer_collection_errors_total{{host="{host}",kind="connect"}} 0.0' in text
    assert "\nprocess_resident_memory_bytes " in text and "\nprocess_open_fds " in text
    assert "_created" not in text
