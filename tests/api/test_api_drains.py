"""/v1/drains: create (idempotent, audited with the token's name), progress, cancel, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from balancer.reasons import Reason
from balancer.store import Store
from balancer.store.records import Blocker, DrainProgress, DrainState
from tests.api.harness import NOW, READ, WRITE, Clock, error, problems
from tests.leader import fence_of


def test_a_drain_is_created_once_and_asking_again_returns_it(client: TestClient, store: Store) -> None:
    r = client.post("/v1/drains", json={"host": "h1", "note": "RAM swap, CHG-1"}, headers=WRITE)
    assert r.status_code == 201
    d = r.json()
    assert (d["host"], d["state"], d["requested_by"], d["note"], d["deadline"]) == (
        "h1",
        "open",
        "ops",
        "RAM swap, CHG-1",
        None,
    )
    again = client.post("/v1/drains", json={"host": "h1"}, headers=WRITE)
    assert again.status_code == 200
    assert again.json()["id"] == d["id"]
    assert len(store.drains()) == 1
    entries = store.audit_log()[::-1]
    assert [(e.actor, e.action, e.subject, e.detail["existing"]) for e in entries] == [
        ("ops", "drain.create", f"drain/{d['id']}", False),
        ("ops", "drain.create", f"drain/{d['id']}", True),
    ]


def test_a_deadline_is_counted_from_now(client: TestClient, clock: Clock) -> None:
    d = client.post("/v1/drains", json={"host": "h2", "deadline_seconds": 7200}, headers=WRITE).json()
    assert d["deadline"] == clock.now + 7200
    assert d["overdue"] is False
    clock.now += 7201
    assert client.get("/v1/drains/h2", headers=READ).json()["overdue"] is True


def test_an_unknown_host_is_422_naming_the_field_and_writes_nothing(client: TestClient, store: Store) -> None:
    r = client.post("/v1/drains", json={"host": "h9"}, headers=WRITE)
    assert problems(r) == [
        {"field": "host", "value": "h9", "message": "is not a configured host; known: h1, h2, h3"}
    ]
    assert store.drains() == () and store.audit_log() == ()


BAD_BODIES: list[tuple[dict[str, Any], str, str]] = [
    ({"json": {}}, "host", "is required"),
    (
        {"json": {"host": "h1", "deadline": 60}},
        "deadline",
        "is not a known field; allowed: host, deadline_seconds, note",
    ),
    ({"json": {"host": "h1", "deadline_seconds": 0}}, "deadline_seconds", "is not > 0.0"),
    ({"json": {"host": "h1", "deadline_seconds": "2h"}}, "deadline_seconds", "is not a number"),
    (
        {
            "content": b'{"host": "h1", "deadline_seconds": NaN}',
            "headers": {"content-type": "application/json"},
        },
        "deadline_seconds",
        "is not a finite number",
    ),
    (
        {"json": {"host": "h1", "note": "a\x00b"}},
        "note",
        "must not contain control characters (newlines and tabs are allowed)",
    ),
    ({"json": {"host": "h1", "note": "x" * 1001}}, "note", "is too long: at most 1000 character(s)"),
    ({"json": {"host": 7}}, "host", "must be a string"),
    ({"json": ["h1"]}, "body", "must be a JSON object sent with Content-Type: application/json"),
    ({"content": b"host=h1"}, "body", "must be a JSON object sent with Content-Type: application/json"),
    (
        {"content": b'{"host": "h1"', "headers": {"content-type": "application/json"}},
        "body",
        "is not valid JSON: Expecting ',' delimiter (at character 13)",
    ),
    (
        {"content": b'{"host": "\xff"}', "headers": {"content-type": "application/json"}},
        "body",
        "cannot be parsed as JSON: There was an error parsing the body",
    ),
]


@pytest.mark.parametrize(("kw", "field", "message"), BAD_BODIES, ids=[b[2][:30] for b in BAD_BODIES])
def test_a_malformed_body_is_422_naming_the_field(
    client: TestClient, store: Store, kw: dict[str, Any], field: str, message: str
) -> None:
    kw = dict(kw)
    headers = {**WRITE, **kw.pop("headers", {})}
    r = client.post("/v1/drains", headers=headers, **kw)
    (problem,) = problems(r)
    assert (problem["field"], problem["message"]) == (field, message)
    assert store.drains() == () and store.audit_log() == ()


def test_get_returns_the_open_drain_else_the_latest(client: TestClient, store: Store) -> None:
    old, _ = store.create_drain("h1", "ops", NOW - 100)
    store.finish_drain(old.id, NOW - 50, fence=fence_of(store))
    assert client.get("/v1/drains/h1", headers=READ).json()["state"] == "done"
    new, _ = store.create_drain("h1", "ops", NOW)
    assert client.get("/v1/drains/h1", headers=READ).json()["id"] == new.id


def test_get_of_a_host_never_drained_or_unknown_is_404(client: TestClient) -> None:
    r = client.get("/v1/drains/h3", headers=READ)
    assert error(r) == (404, "drain_not_found", "host 'h3' has never been drained")
    r = client.get("/v1/drains/h9", headers=READ)
    assert error(r) == (404, "host_not_found", "host 'h9' is not a configured host; known: h1, h2, h3")


def test_progress_shows_remaining_in_flight_eta_and_blockers(client: TestClient, store: Store) -> None:
    d, _ = store.create_drain("h1", "ops", NOW)
    blocker = Blocker("db-1", Reason.NO_MEMORY, "no host with 64 GiB free")
    store.update_drain_progress(
        d.id, DrainProgress(3, 30 * 2**30, ("web-1",), 1, 0, 600.0, (blocker,)), NOW, fence=fence_of(store)
    )
    got = client.get("/v1/drains/h1", headers=READ).json()
    assert got["progress"] == {
        "vms_remaining": 3,
        "bytes_remaining": 30 * 2**30,
        "in_flight": ["web-1"],
        "done": 1,
        "failed": 0,
        "eta_seconds": 600.0,
        "blockers": [
            {
                "vm": "db-1",
                "reason": "no_memory",
                "detail": "no host with 64 GiB free",
                "message": "no host with 64 GiB free",
            }
        ],
    }
    assert got["blocked"] is False  # web-1 is still moving
    store.update_drain_progress(
        d.id, DrainProgress(2, 20 * 2**30, (), 2, 0, None, (blocker,)), NOW + 60, fence=fence_of(store)
    )
    assert client.get("/v1/drains/h1", headers=READ).json()["blocked"] is True


def test_delete_cancels_the_open_drain_and_audits_it(client: TestClient, store: Store) -> None:
    d = client.post("/v1/drains", json={"host": "h1"}, headers=WRITE).json()
    r = client.delete("/v1/drains/h1", headers=WRITE)
    assert r.status_code == 200
    assert (r.json()["id"], r.json()["state"], r.json()["closed_by"]) == (d["id"], "cancelled", "ops")
    assert store.audit_log(limit=1)[0].action == "drain.cancel"
    r = client.delete("/v1/drains/h1", headers=WRITE)
    assert error(r) == (
        404,
        "not_drained",
        "host 'h1' has no open drain and is not held in maintenance by a finished one",
    )


def test_delete_after_a_finished_drain_puts_the_host_back_in_service(
    client: TestClient, store: Store
) -> None:
    d, _ = store.create_drain("h1", "ops", NOW)
    store.finish_drain(d.id, NOW + 1, fence=fence_of(store))
    r = client.delete("/v1/drains/h1", headers=WRITE)
    assert (r.status_code, r.json()["id"], r.json()["state"]) == (200, d.id, "released")
    assert store.audit_log(limit=1)[0].action == "drain.release"
    assert error(client.delete("/v1/drains/h1", headers=WRITE))[:2] == (404, "not_drained")


def test_drains_are_listed_newest_first_and_filtered(client: TestClient, store: Store) -> None:
    a, _ = store.create_drain("h1", "ops", NOW)
    b, _ = store.create_drain("h2", "ops", NOW + 1)
    store.close_drain(a.id, DrainState.CANCELLED, "ops", NOW + 2)
    assert [d["id"] for d in client.get("/v1/drains", headers=READ).json()] == [b.id, a.id]
    assert [d["id"] for d in client.get("/v1/drains?state=open", headers=READ).json()] == [b.id]
    assert [d["id"] for d in client.get("/v1/drains?host=h1", headers=READ).json()] == [a.id]
    r = client.get("/v1/drains?host=h9", headers=READ)
    assert problems(r)[0]["field"] == "host"
