"""Journal ids by a unique prefix, as operators read them shortened: one match resolves, several are
409 ``ambiguous_id`` naming them, none is 404; the prefix is matched literally (``_`` and ``%`` too)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from balancer.model import MoveState
from balancer.store import Store
from tests.api.harness import READ, WRITE, Aborts, error
from tests.store.builders import record


@pytest.fixture
def journal(store: Store) -> None:
    store.save_record(record("c30fe19a01", vm="web-1", state=MoveState.MIGRATING))
    store.save_record(record("c30fe19b02", vm="web-2", state=MoveState.SUCCEEDED))
    store.save_record(record("d7_run", vm="db-1", state=MoveState.MIGRATING))
    store.save_record(record("d7xdone", vm="db-2", state=MoveState.SUCCEEDED))


@pytest.mark.usefixtures("journal")
def test_a_unique_prefix_resolves_to_the_full_record(client: TestClient) -> None:
    assert client.get("/v1/migrations/c30fe19a", headers=READ).json()["id"] == "c30fe19a01"
    assert client.get("/v1/migrations/c30fe19b02", headers=READ).json()["vm"] == "web-2"
    assert client.get("/v1/migrations/d7_", headers=READ).json()["id"] == "d7_run"  # `_` is no wildcard


@pytest.mark.usefixtures("journal")
def test_an_ambiguous_prefix_is_409_naming_the_candidates(client: TestClient, aborts: Aborts) -> None:
    detail = (
        "migration id prefix 'c30fe19' matches 2 migrations: c30fe19a01, c30fe19b02; give more characters"
    )
    assert error(client.get("/v1/migrations/c30fe19", headers=READ)) == (409, "ambiguous_id", detail)
    aborts.running.add("c30fe19a01")
    assert error(client.post("/v1/migrations/c30fe19/abort", headers=WRITE)) == (409, "ambiguous_id", detail)
    assert aborts.calls == []  # nothing acts on a guess


@pytest.mark.usefixtures("journal")
def test_no_match_is_404_and_wildcards_match_only_themselves(client: TestClient) -> None:
    assert error(client.get("/v1/migrations/e", headers=READ))[:2] == (404, "migration_not_found")
    assert error(client.get("/v1/migrations/d7%25", headers=READ))[:2] == (404, "migration_not_found")


@pytest.mark.usefixtures("journal")
def test_abort_by_prefix_acts_on_and_reports_the_full_id(
    client: TestClient, store: Store, aborts: Aborts
) -> None:
    aborts.running.add("c30fe19a01")
    r = client.post("/v1/migrations/c30fe19a/abort", headers=WRITE)
    assert r.status_code == 202 and r.json()["id"] == "c30fe19a01"
    assert aborts.calls == ["c30fe19a01"]
    assert store.audit_log()[0].subject == "migration/c30fe19a01"
    finished = error(client.post("/v1/migrations/d7x/abort", headers=WRITE))
    assert finished == (
        409,
        "migration_finished",
        "migration d7xdone is already succeeded; there is nothing to abort",
    )
