"""/healthz, /readyz, /metrics, /v1/hosts and /v1/vms over the service's Live view."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from balancer.api.app import ApiContext
from balancer.api.context import Live
from balancer.store import Store
from tests.api.harness import NOW, READ, WRITE, error, problems, stand_in


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: what these tests check does not depend on the database."""
    return f"sqlite:///{tmp_path}/state/balancer.db"


def test_healthz_answers_while_the_process_lives(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"


def test_ready_after_a_recent_tick(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert 0 <= body["last_tick_age_seconds"] < 60
    assert body | {"last_tick_age_seconds": 0} == {
        "ready": True,
        "problems": [],
        "leader": True,
        "epoch": 1,
        "last_tick": NOW,
        "last_tick_age_seconds": 0,
        "last_error": None,
    }


def test_not_ready_before_the_first_tick(client: TestClient, ctx: ApiContext) -> None:
    stand_in(ctx).value = Live()
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["problems"] == ["no tick has completed yet"]


def test_not_ready_when_the_last_tick_is_older_than_three_intervals(
    client: TestClient, ctx: ApiContext
) -> None:
    # judged on the monotonic clock (collection.interval_seconds defaults to 60): a tick 181 s ago
    stand_in(ctx).set(last_error="CollectError: h2: timeout", last_tick_monotonic=time.monotonic() - 181)
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["problems"] == [
        "the last tick completed 181 s ago, more than 3 x collection.interval_seconds (180 s)"
    ]
    assert body["last_error"] == "CollectError: h2: timeout"
    stand_in(ctx).set(last_tick_monotonic=time.monotonic() - 170)
    assert client.get("/readyz").status_code == 200


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    assert "balancer_build_info" in r.text


def test_hosts_show_state_load_vm_count_disk_bytes_and_open_drain(client: TestClient, store: Store) -> None:
    drain, _ = store.create_drain("h1", "ops", NOW)
    hosts = {h["name"]: h for h in client.get("/v1/hosts", headers=READ).json()}
    assert list(hosts) == ["h1", "h2", "h3"]
    h1 = hosts["h1"]
    assert (h1["state"], h1["vms"], h1["drain_id"]) == ("up", 3, drain.id)
    assert h1["load"]["cpu"] == (2.0 + 2.0 + 1.0) / 8.0
    assert h1["vm_disk_bytes"] == 3 * 5 * 2**30
    assert hosts["h3"]["vms"] == 0 and hosts["h3"]["drain_id"] is None


def test_one_host_and_an_unknown_host(client: TestClient) -> None:
    assert client.get("/v1/hosts/h2", headers=READ).json()["vms"] == 1
    r = client.get("/v1/hosts/h9", headers=READ)
    assert error(r) == (404, "host_not_found", "host 'h9' is not a configured host; known: h1, h2, h3")


def test_hosts_are_listed_as_unknown_before_the_first_collection(client: TestClient, ctx: ApiContext) -> None:
    stand_in(ctx).value = Live()
    hosts = client.get("/v1/hosts", headers=READ).json()
    assert [(h["name"], h["state"], h["load"]) for h in hosts] == [
        ("h1", "unknown", None),
        ("h2", "unknown", None),
        ("h3", "unknown", None),
    ]


def test_vms_all_and_of_one_host(client: TestClient) -> None:
    assert {v["name"] for v in client.get("/v1/vms", headers=READ).json()} == {
        "web-1",
        "web-2",
        "db-1",
        "app-1",
    }
    (app,) = client.get("/v1/vms?host=h2", headers=READ).json()
    assert (app["name"], app["cpu_cores"], app["cpu_std_cores"]) == ("app-1", 1.0, 0.25)
    db = client.get("/v1/vms/db-1", headers=READ).json()
    assert (db["host"], db["memory_bytes"], db["disks"][0]["target"]) == ("h1", 64 * 2**30, "vda")


def test_vms_of_an_unknown_host_is_422_naming_the_field(client: TestClient) -> None:
    r = client.get("/v1/vms?host=h9", headers=READ)
    assert problems(r) == [
        {"field": "host", "value": "h9", "message": "is not a configured host; known: h1, h2, h3"}
    ]


def test_an_unknown_vm_is_404(client: TestClient) -> None:
    status, code, detail = error(client.get("/v1/vms/nope", headers=READ))
    assert (status, code) == (404, "vm_not_found")
    assert "VM 'nope' is not in the last snapshot" in detail


def test_vms_before_the_first_collection_are_503(client: TestClient, ctx: ApiContext) -> None:
    stand_in(ctx).value = Live()
    status, code, detail = error(client.get("/v1/vms", headers=READ))
    assert (status, code) == (503, "no_snapshot")
    assert "no snapshot yet" in detail
    assert error(client.post("/v1/preview", json={}, headers=WRITE))[:2] == (503, "no_snapshot")


def test_an_unknown_query_parameter_is_422_naming_it(client: TestClient) -> None:
    r = client.get("/v1/vms?hots=h1", headers=READ)
    assert problems(r) == [
        {"field": "hots", "value": "h1", "message": "is not a query parameter of /v1/vms; allowed: host"}
    ]
