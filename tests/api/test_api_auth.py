"""Bearer tokens: 401 without or with an unknown token, 403 for a read token on a write, open_reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from balancer.api.app import create_app
from balancer.errors import ConfigError
from balancer.store import Store
from tests.api.harness import READ, READ_TOKEN, WRITE, config, context


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: what these tests check does not depend on the database."""
    return f"sqlite:///{tmp_path}/state/balancer.db"


WRITES = [
    ("post", "/v1/drains", {"json": {"host": "h1"}}),
    ("delete", "/v1/drains/h1", {}),
    ("post", "/v1/plans/1/approve", {}),
    ("post", "/v1/plans/1/reject", {}),
    ("post", "/v1/plans/1/moves/0/approve", {}),
    ("post", "/v1/migrations/m1/abort", {}),
]
READS = ["/v1/hosts", "/v1/vms", "/v1/drains", "/v1/plans", "/v1/migrations"]


@pytest.mark.parametrize("path", READS)
def test_a_read_without_a_token_is_401_with_a_bearer_challenge(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token is required" in r.json()["detail"]


@pytest.mark.parametrize(("method", "path", "kw"), WRITES)
def test_a_write_without_a_token_is_401(client: TestClient, method: str, path: str, kw: dict) -> None:
    r = client.request(method.upper(), path, **kw)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "kw"), WRITES)
def test_a_read_token_on_a_write_is_403_and_changes_nothing(
    client: TestClient, store: Store, method: str, path: str, kw: dict
) -> None:
    r = client.request(method.upper(), path, headers=READ, **kw)
    assert r.status_code == 403
    assert "'viewer' has role read" in r.json()["detail"]
    assert store.drains() == ()
    assert store.audit_log() == ()


@pytest.mark.parametrize(
    "header", ["Bearer not-a-configured-token", f"Bearer {READ_TOKEN}x", "Bearer " + "w" * 16]
)
def test_an_unknown_token_is_401_invalid_token(client: TestClient, header: str) -> None:
    for r in (
        client.get("/v1/hosts", headers={"Authorization": header}),
        client.post("/v1/drains", json={"host": "h1"}, headers={"Authorization": header}),
    ):
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_a_non_bearer_authorization_is_401(client: TestClient) -> None:
    r = client.get("/v1/hosts", headers={"Authorization": f"Basic {READ_TOKEN}"})
    assert r.status_code == 401
    assert "must be 'Bearer <token>'" in r.json()["detail"]


def test_read_and_write_tokens_both_read(client: TestClient) -> None:
    assert client.get("/v1/hosts", headers=READ).status_code == 200
    assert client.get("/v1/hosts", headers=WRITE).status_code == 200


def test_probes_metrics_and_the_openapi_document_need_no_token(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path


def test_open_reads_allow_reads_without_a_token_but_not_writes(store: Store, store_url: str) -> None:
    app = create_app(context(config(store_url, open_reads=True), store))
    with TestClient(app) as c:
        assert c.get("/v1/hosts").status_code == 200
        assert c.get("/v1/plans").status_code == 200
        assert c.post("/v1/drains", json={"host": "h1"}).status_code == 401
        assert c.get("/v1/hosts", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_token_files_are_read_when_the_app_is_built(store: Store, store_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s" * 24 + "\n")
    secret.chmod(0o600)
    cfg = config(store_url, api={"tokens": [{"name": "robot", "token_file": str(secret)}]})
    with TestClient(create_app(context(cfg, store))) as c:
        r = c.post("/v1/drains", json={"host": "h3"}, headers={"Authorization": "Bearer " + "s" * 24})
        assert r.status_code == 201
        assert r.json()["requested_by"] == "robot"
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match=r"api.tokens\[0\].token_file: .* has mode 0644"):
        create_app(context(cfg, store))
    secret.unlink()
    with pytest.raises(ConfigError, match=r"api.tokens\[0\].token_file: .* cannot be read"):
        create_app(context(cfg, store))


def test_requests_are_counted_by_method_and_code(client: TestClient) -> None:
    client.get("/v1/hosts")
    client.get("/v1/hosts", headers=READ)
    client.post("/v1/drains", json={"host": "h1"}, headers=READ)
    metrics = client.get("/metrics").text
    assert 'balancer_api_requests_total{code="401",method="GET"} 1.0' in metrics
    assert 'balancer_api_requests_total{code="200",method="GET"} 1.0' in metrics
    assert 'balancer_api_requests_total{code="403",method="POST"} 1.0' in metrics
