"""The request gate: writes are authorised and bodies measured before the app reads them (401, 403,
413, never a 422 for size); 405 names every method of a path; /docs needs nothing from the network."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi.testclient import TestClient

from balancer.api.middleware import MAX_BODY_BYTES
from balancer.api.schemas import LeaderConflictOut
from balancer.model import MoveState
from balancer.store import Store
from tests.api.harness import READ, WRITE, error, problems
from tests.store.builders import record

BIG = b'{"host": "h1", "note": "' + b"x" * (10 * 1024 * 1024) + b'"}'


def chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    """A JSON body of ``total`` bytes sent without Content-Length (chunked)."""
    head, tail = b'{"host": "h1", "note": "', b'"}'
    yield head
    left = total - len(head) - len(tail)
    while left > 0:
        yield b"x" * min(size, left)
        left -= size
    yield tail


def test_a_body_over_the_limit_is_413_not_422(client: TestClient) -> None:
    r = client.post("/v1/drains", content=BIG, headers={**WRITE, "Content-Type": "application/json"})
    assert error(r) == (413, "body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes")


def test_a_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    r = client.post(
        "/v1/drains",
        content=chunks(MAX_BODY_BYTES + 1),
        headers={**WRITE, "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_a_chunked_body_within_the_limit_reaches_the_route(client: TestClient) -> None:
    body = b'{"host": "h3", "note": "sent in pieces"}'
    r = client.post(
        "/v1/drains",
        content=iter([body[:10], body[10:]]),
        headers={**WRITE, "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["note"] == "sent in pieces"


def test_a_write_without_a_token_is_401_before_the_body_counts(client: TestClient) -> None:
    r = client.post("/v1/drains", content=BIG, headers={"Content-Type": "application/json"})
    assert error(r)[:2] == (401, "token_required")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="balancer"'
    r = client.post("/v1/drains", content=BIG, headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert error(r) == (401, "token_invalid", "the bearer token is not one of api.tokens")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="balancer", error="invalid_token"'
    r = client.post("/v1/drains", content=BIG, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert error(r) == (401, "token_invalid", "the Authorization header must be 'Bearer <token>'")


def test_a_write_with_a_read_token_is_403_before_the_body_counts(client: TestClient) -> None:
    r = client.post("/v1/drains", content=BIG, headers=READ)
    assert error(r)[:2] == (403, "write_token_required")
    assert "insufficient_scope" in r.headers["WWW-Authenticate"]
    assert client.delete("/v1/drains/h1", headers=READ).status_code == 403


def test_the_gate_answers_are_counted(client: TestClient) -> None:
    client.post("/v1/drains", content=BIG, headers=WRITE)
    text = client.get("/metrics").text
    assert 'balancer_api_requests_total{code="413",method="POST"} 1.0' in text


def test_a_405_names_every_method_of_the_path(client: TestClient) -> None:
    r = client.put("/v1/drains", json={}, headers=WRITE)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST"
    r = client.patch("/v1/drains/h1", headers=WRITE)
    assert (r.status_code, r.headers["Allow"]) == (405, "DELETE, GET")


def test_a_strict_deadline(client: TestClient) -> None:
    r = client.post("/v1/drains", json={"host": "h1", "deadline_seconds": True}, headers=WRITE)
    assert problems(r) == [{"field": "deadline_seconds", "value": True, "message": "is not a number"}]


def test_the_docs_load_every_asset_from_the_service(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", page.text)
    assert not external, external
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)""", page.text)
    assert {a.rsplit(".", 1)[-1] for a in assets} >= {"js", "css"}, assets
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 1000, asset
    assert client.get("/openapi.json").status_code == 200


def test_the_openapi_document_has_the_413(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "413" in doc["paths"]["/v1/drains"]["post"]["responses"]
    assert "413" not in doc["paths"]["/v1/drains"]["get"]["responses"]


def test_a_409_for_a_finished_migration_matches_its_documented_schema(
    client: TestClient, store: Store
) -> None:
    store.save_record(record("m-done", vm="web-2", source="h1", target="h3", state=MoveState.SUCCEEDED))
    r = client.post("/v1/migrations/m-done/abort", headers=WRITE)
    assert r.status_code == 409
    doc = client.get("/openapi.json").json()
    documented = doc["paths"]["/v1/migrations/{migration_id}/abort"]["post"]["responses"]["409"]
    ref = documented["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(doc["components"]["schemas"][ref].get("required", [])) <= set(r.json())
    assert LeaderConflictOut.model_validate(r.json()).leader is None
