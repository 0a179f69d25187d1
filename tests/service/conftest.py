"""Service fixtures: a Running service (store, collector, executor, metrics) on test-driver hosts.

Ticks are driven by calling ``service.tick()`` directly, so tests need no scheduler and no sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from balancer.config import Config, parse
from balancer.daemon import Running, build

TESTDRIVER = Path(__file__).resolve().parents[1] / "data" / "testdriver"


def ok_ticks(api: str) -> float:
    """balancer_ticks_total{result="ok"} of the service at ``api`` (0 while it does not answer)."""
    try:
        text = httpx.get(f"{api}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0.0
    for line in text.splitlines():
        if line.startswith('balancer_ticks_total{result="ok"}'):
            return float(line.split()[-1])
    return 0.0


def driver_hosts(**capacity: dict[str, Any]) -> list[dict[str, Any]]:
    hosts = []
    for name in ("a", "b", "c"):
        h: dict[str, Any] = {"name": name, "uri": f"test://{TESTDRIVER / f'host-{name}.xml'}"}
        if name in capacity:
            h["capacity"] = capacity[name]
        hosts.append(h)
    return hosts


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    built: list[Running] = []

    def make(store_url: str | None = None, **sections: Any) -> Running:
        data: dict[str, Any] = {
            "hosts": driver_hosts(),
            "store": {"url": store_url or f"sqlite:///{tmp_path}/balancer.db"},
            "collection": {"interval_seconds": 1, "window": 1},
            "thresholds": {"hold_ticks": 1},
            # These tests tick by hand and renew the lease themselves, once: no keeper renews it between
            # ticks, so the default lease (one 1 s interval) lapsed between two ticks on a loaded CI
            # machine and the tick's leader-only write was refused (LeaseLost). Tests of the default
            # lease length pass service={} to get it.
            "service": {"lease_seconds": 60},
        }
        data.update(sections)
        cfg: Config = parse(data)
        running = build(cfg)
        built.append(running)
        return running

    yield make
    for r in built:
        r.service.shutdown(5)
        r.lease.stop()
        r.service.collector.close()
        r.store.close()
