"""balancer/metrics/export.py on the wire: a real scrape passes ``promtool check metrics`` and a real
Prometheus stores the series the dashboard and the alerts query."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from balancer.metrics.export import Metrics
from balancer.policy.args import ThresholdArgs
from tests.observability import sample_cluster
from tests.observability.conftest import ScrapedCluster, serve
from tests.observability.inventory import Inventory
from tests.prom import promtool_check_metrics

GIB = 1024**3


@pytest.mark.parametrize("busy", [True, False], ids=["busy", "steady"])
def test_scrape_passes_promtool_check_metrics(busy: bool) -> None:
    metrics = sample_cluster.new_metrics()
    sample_cluster.populate(metrics, time.time(), busy=busy)
    with serve(metrics) as target:
        resp = httpx.get(f"http://{target}/metrics", timeout=10)
    assert resp.status_code == 200
    assert "balancer_host_load_ratio{" in resp.text
    promtool_check_metrics(resp.text)


def test_promtool_check_metrics_fails_on_a_convention_problem() -> None:
    """The helper is not vacuous: a counter without _total is reported."""
    with pytest.raises(AssertionError, match="_total"):
        promtool_check_metrics("# HELP balancer_bad Bad.\n# TYPE balancer_bad counter\nbalancer_bad 1\n")


#: What prometheus_client's process and platform collectors export besides our balancer_* families.
PROCESS = {
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_cpu_seconds",
    "process_open_fds",
    "process_max_fds",
    "python_info",
}


def test_every_family_is_prefixed_documented_and_has_no_per_vm_label(inventory: Inventory) -> None:
    assert inventory.empty == frozenset(), "sample_cluster.populate leaves these families without samples"
    for fam in inventory.families.values():
        assert fam.name.startswith("balancer_") or fam.name in PROCESS, fam.name
        assert fam.help.strip(), f"{fam.name} has no HELP text"
        assert not fam.labels & {"vm", "domain", "uuid"}, f"{fam.name} has a per-VM label"
    assert set(inventory.families) >= PROCESS, "the process metrics are missing"


def test_no_created_series_and_the_process_metrics_are_served() -> None:
    metrics = sample_cluster.new_metrics()
    sample_cluster.populate(metrics, time.time())
    with serve(metrics) as target:
        text = httpx.get(f"http://{target}/metrics", timeout=10).text
    assert "_created" not in text
    for name in ("process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds"):
        assert f"\n{name} " in text, name
    assert "process_cpu_seconds_total " in text


def test_the_config_the_alerts_compare_with_is_exported() -> None:
    text = generate_latest(sample_cluster.new_metrics().registry).decode()
    t = ThresholdArgs()
    assert f'balancer_config_high_water_ratio{{resource="cpu"}} {t.cpu_high}' in text
    assert f'balancer_config_high_water_ratio{{resource="memory"}} {t.memory_high}' in text
    assert f"balancer_config_target_imbalance {t.target_imbalance}" in text
    assert "balancer_config_collection_interval_seconds 60.0" in text
    assert 'balancer_collection_errors_total{host="compute-1",kind="connect"} 0.0' in text
    bare = generate_latest(Metrics(CollectorRegistry()).registry).decode()
    for given in ("high_water_ratio", "target_imbalance", "collection_interval_seconds"):
        assert f"balancer_config_{given}" not in bare  # nothing is exported that was not given
    with pytest.raises(ValueError, match="unknown thresholds"):
        Metrics(CollectorRegistry(), thresholds={"cpu_hi": 0.8})


@pytest.mark.slow
def test_prometheus_stores_the_expected_series(scraped_cluster: ScrapedCluster) -> None:
    prom = scraped_cluster.prometheus

    def num(expr: str) -> float:
        value = prom.value(expr)
        assert value is not None, f"no series for {expr}"
        return value

    assert prom.value(f'up{{instance="{scraped_cluster.target}", job="balancer"}}') == 1

    assert prom.value('balancer_host_load_ratio{host="compute-1", resource="cpu"}') == pytest.approx(0.92)
    assert prom.value('balancer_host_load_ratio{host="compute-3", resource="memory"}') == pytest.approx(0.63)
    states = prom.query("balancer_host_state == 1")
    assert {(r["metric"]["host"], r["metric"]["state"]) for r in states} == {
        ("compute-1", "up"),
        ("compute-2", "up"),
        ("compute-3", "draining"),
    }
    assert prom.value('balancer_host_vms{host="compute-3"}') == 2

    assert prom.value('balancer_imbalance{resource="combined"}') == pytest.approx(0.19)
    assert prom.value("balancer_overloaded_hosts") == 1
    moves = prom.query("balancer_plan_moves")
    assert {r["metric"]["reason"]: float(r["value"][1]) for r in moves} == {"drain": 1.0, "hotspot": 1.0}
    skips = prom.query("balancer_plan_skips")
    assert {r["metric"]["reason"] for r in skips} == {"cooldown", "no_fit"}

    assert prom.value('balancer_drain_vms_remaining{host="compute-3"}') == 2
    assert prom.value('balancer_drain_bytes_remaining{host="compute-3"}') == 72 * GIB
    assert prom.value('balancer_drain_blocked_vms{host="compute-3"}') == 1
    assert prom.value('balancer_drain_eta_seconds{host="compute-3"}') == 1260
    assert num('balancer_drain_deadline_timestamp_seconds{host="compute-3"} - time()') > 3 * 3600

    assert prom.value("balancer_migrations_in_flight") == 1
    assert prom.value("sum(balancer_migration_queue_depth)") == 2
    assert prom.value("balancer_leader") == 1
    assert prom.value('balancer_automation_level{level="auto"}') == 1
    assert prom.value('balancer_migrations_finished_total{result="failed", reason="not_converging"}') == 1
    assert num('balancer_migrations_started_total{reason="drain"}') >= 4  # advancing
    assert prom.value('balancer_collection_errors_total{host="compute-3", kind="timeout"}') == 2
    p50 = num("histogram_quantile(0.5, sum by (le) (balancer_migration_duration_seconds_bucket))")
    assert 60 <= p50 <= 300
    assert num("time() - balancer_last_successful_tick_timestamp_seconds") < 600
