"""Failures that are not the caller's: the store failing is a 503, a bug a logged JSON 500."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from balancer.api.app import ApiContext, create_app
from balancer.store import Store
from tests.api.harness import READ, WRITE, config, context, error, stand_in


@pytest.fixture
def sqlite_app(tmp_path: Path) -> tuple[TestClient, Path, Store]:
    path = tmp_path / "balancer.db"
    store = Store.open(f"sqlite:///{path}", now=0.0)
    return (
        TestClient(create_app(context(config(f"sqlite:///{path}"), store)), raise_server_exceptions=False),
        path,
        store,
    )


def _drop(path: Path, table: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"DROP TABLE {table}")


def test_a_failing_store_is_503_with_the_databases_text(sqlite_app: tuple[TestClient, Path, Store]) -> None:
    client, path, store = sqlite_app
    _drop(path, "drains")
    status, code, detail = error(client.post("/v1/drains", json={"host": "h1"}, headers=WRITE))
    assert (status, code) == (503, "store_unavailable")
    assert detail.startswith("store: create_drain h1: no such table: drains")
    store.close()


def test_not_ready_when_the_store_does_not_answer(sqlite_app: tuple[TestClient, Path, Store]) -> None:
    client, path, store = sqlite_app
    _drop(path, "schema_version")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["problems"] == [
        "the store does not answer: schema_version: no such table: schema_version"
    ]
    store.close()


def test_a_bug_is_a_json_500_and_logged(
    client: TestClient, ctx: ApiContext, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in(ctx).set(snapshot="not a snapshot")
    r = client.get("/v1/vms", headers=READ)
    assert error(r) == (
        500,
        "internal_error",
        "internal error (AttributeError); the service log has the traceback",
    )
    assert "event=api_internal_error method=GET path=/v1/vms" in caplog.text
    assert 'balancer_api_requests_total{code="500",method="GET"} 1.0' in client.get("/metrics").text


def test_unknown_paths_are_404_json(client: TestClient) -> None:
    r = client.get("/v1/nothing", headers=READ)
    assert error(r) == (404, "not_found", "Not Found")
    r = client.put("/v1/drains", headers=WRITE)
    assert error(r) == (405, "method_not_allowed", "Method Not Allowed")
    assert r.headers["allow"] == "GET, POST"
