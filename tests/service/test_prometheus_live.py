"""A real Prometheus scrapes a running balancer (`serve`, test-driver hosts and one host whose libvirtd
does not answer): after a drain request the drain series are there, `promtool check metrics` passes
on the scrape, and the collection-failure alert fires for the dead host."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from balancer.config import parse
from balancer.daemon import serve
from tests.observability.test_alerts_live import shortened_rules
from tests.prom import free_port, promtool_check_metrics, run_prometheus
from tests.service.conftest import driver_hosts
from tests.waiting import wait_for

pytestmark = pytest.mark.slow
ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
TOKEN = "prometheus-test-token-0123"


def ready(api: httpx.Client) -> bool:
    try:
        return api.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def test_prometheus_sees_the_drain_and_fires_on_a_dead_host(tmp_path: Path) -> None:
    hosts = [*driver_hosts(), {"name": "dead", "uri": "qemu+unix:///system?socket=/nonexistent/libvirt-sock"}]
    listen = f"127.0.0.1:{free_port()}"
    cfg = parse(
        {
            "hosts": hosts,
            "automation": "recommend",
            "collection": {"interval_seconds": 1, "window": 1},
            "store": {"url": f"sqlite:///{tmp_path}/balancer.db"},
            "api": {"listen": listen, "tokens": [{"name": "ops", "token": TOKEN}]},
        }
    )
    stop = threading.Event()
    service = threading.Thread(target=serve, args=(cfg,), kwargs={"stop": stop}, daemon=True)
    service.start()
    api = httpx.Client(base_url=f"http://{listen}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:
        wait_for("the service to tick", lambda: ready(api), timeout=60, every=0.5)
        assert api.post("/v1/drains", json={"host": "c"}).status_code == 201
        promtool_check_metrics(api.get("/metrics").text)
        rules = shortened_rules(ALERTS, tmp_path / "alerts.yml")
        with run_prometheus([listen], [rules], tmp_path / "prom") as prom:
            prom.wait_for(
                'balancer_drain_vms_remaining{host="c"}',
                lambda v: bool(v) and v[0]["value"][1] == "1",
                timeout=60,
            )
            assert prom.value('balancer_host_state{host="dead",state="down"}') == 1.0
            assert prom.value('balancer_host_state{host="c",state="draining"}') == 1.0
            assert prom.value("balancer_leader") == 1.0
            firing = prom.wait_for_alert("BalancerHostCollectionFailing", timeout=60)
            assert {a["labels"].get("host") for a in firing} == {"dead"}
    finally:
        stop.set()
        service.join(timeout=60)
        api.close()
    assert not service.is_alive()
