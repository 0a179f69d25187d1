"""Fixtures for the observability artifacts: a populated metrics registry, served on 127.0.0.1, and a real
Prometheus scraping it (tests/prom.py). ``tests.*`` imports from the repository root (pyproject's
``pythonpath = ["."]``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import start_http_server

from balancer.metrics.export import Metrics
from tests.observability import sample_cluster
from tests.observability.inventory import Inventory
from tests.prom import Prometheus, run_prometheus

ROOT = Path(__file__).resolve().parents[2]

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "balancer.json"
DOCS = ROOT / "docs" / "observability.md"


@contextmanager
def serve(metrics: Metrics) -> Iterator[str]:
    """Serve ``metrics``' registry at http://127.0.0.1:<free port>/metrics; yields ``127.0.0.1:<port>``."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def advancing(metrics: Metrics, every: float = 0.5) -> Iterator[None]:
    """Advance the sample cluster's counters every ``every`` seconds in a thread, until the block ends."""
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.wait(every):
            sample_cluster.advance(metrics, i)
            i += 1

    thread = threading.Thread(target=run, name="advance-metrics", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def busy_metrics(now: float | None = None) -> Metrics:
    metrics = sample_cluster.new_metrics()
    sample_cluster.populate(metrics, time.time() if now is None else now, busy=True)
    return metrics


@pytest.fixture(scope="session")
def inventory() -> Inventory:
    """Every family the service's registry has (balancer_*, process_*, python_info), with its labels."""
    return Inventory.of(busy_metrics())


@dataclass
class ScrapedCluster:
    """The busy sample cluster, served on 127.0.0.1 and scraped every second by a real Prometheus."""

    metrics: Metrics
    target: str
    prometheus: Prometheus


@pytest.fixture(scope="session")
def scraped_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrapedCluster]:
    """Started once per session, only by the slow tests that ask for it; counters keep moving."""
    metrics = busy_metrics()
    with (
        serve(metrics) as target,
        advancing(metrics),
        run_prometheus([target], workdir=tmp_path_factory.mktemp("prometheus")) as prom,
    ):
        prom.wait_for_scrapes(count=4, timeout=30)
        yield ScrapedCluster(metrics, target, prom)
