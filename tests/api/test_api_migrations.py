"""/v1/migrations: the journal, and abort (here when this executor runs it, else 409 naming the leader)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from balancer.api.app import ApiContext
from balancer.model import MoveState
from balancer.reasons import Reason
from balancer.store import Store
from tests.api.harness import NOW, READ, WRITE, Aborts, Clock, error, stand_in
from tests.store.builders import record


@pytest.fixture
def journal(store: Store) -> None:
    store.save_record(
        record(
            "m-old",
            vm="web-1",
            state=MoveState.SUCCEEDED,
            created_at=NOW - 300,
            finished_at=NOW - 200,
            outcome=Reason.SUCCEEDED,
        )
    )
    store.save_record(
        record(
            "m-failed",
            vm="web-2",
            state=MoveState.FAILED,
            created_at=NOW - 100,
            outcome=Reason.MIGRATION_FAILED,
            error_code=9,
            error_domain=10,
            error_message="operation failed: migration job: unexpectedly failed",
        )
    )
    store.save_record(
        record("m-run", vm="db-1", source="h1", target="h3", state=MoveState.MIGRATING, created_at=NOW)
    )


@pytest.mark.usefixtures("journal")
def test_migrations_newest_first_with_filters(client: TestClient) -> None:
    ids = [m["id"] for m in client.get("/v1/migrations", headers=READ).json()]
    assert ids == ["m-run", "m-failed", "m-old"]
    assert [m["id"] for m in client.get("/v1/migrations?state=migrating", headers=READ).json()] == ["m-run"]
    assert [m["id"] for m in client.get("/v1/migrations?state=failed", headers=READ).json()] == ["m-failed"]
    assert [m["id"] for m in client.get("/v1/migrations?vm=web-1", headers=READ).json()] == ["m-old"]
    assert [m["id"] for m in client.get("/v1/migrations?limit=1", headers=READ).json()] == ["m-run"]


@pytest.mark.usefixtures("journal")
def test_a_migration_keeps_libvirts_error(client: TestClient) -> None:
    m = client.get("/v1/migrations/m-failed", headers=READ).json()
    assert (m["state"], m["final"], m["outcome"]) == ("failed", True, "migration_failed")
    assert m["error"] == {
        "code": 9,
        "domain": 10,
        "message": "operation failed: migration job: unexpectedly failed",
    }


def test_an_unknown_migration_is_404(client: TestClient) -> None:
    r = client.get("/v1/migrations/nope", headers=READ)
    assert error(r) == (
        404,
        "migration_not_found",
        "migration 'nope' is not in the journal (no id is or starts with it)",
    )
    assert error(client.post("/v1/migrations/nope/abort", headers=WRITE))[:2] == (404, "migration_not_found")


@pytest.mark.usefixtures("journal")
def test_abort_of_a_migration_running_here_is_accepted_and_audited(
    client: TestClient, store: Store, aborts: Aborts
) -> None:
    aborts.running.add("m-run")
    r = client.post("/v1/migrations/m-run/abort", headers=WRITE)
    assert r.status_code == 202
    assert r.json()["message"] == "abort of db-1 (h1 -> h3) requested"
    assert aborts.calls == ["m-run"]
    (entry,) = store.audit_log()
    assert (entry.actor, entry.action, entry.subject) == ("ops", "migration.abort", "migration/m-run")


@pytest.mark.usefixtures("journal")
def test_abort_of_a_finished_migration_is_409(client: TestClient, aborts: Aborts) -> None:
    r = client.post("/v1/migrations/m-old/abort", headers=WRITE)
    assert error(r) == (
        409,
        "migration_finished",
        "migration m-old is already succeeded; there is nothing to abort",
    )
    assert aborts.calls == []


@pytest.mark.usefixtures("journal")
def test_abort_on_a_follower_is_409_naming_the_leader(
    client: TestClient, ctx: ApiContext, store: Store, clock: Clock
) -> None:
    stand_in(ctx).set(leader=False, epoch=None)
    holder = "node-b/4242/abcd1234@http://10.0.0.2:8787"
    assert store.acquire_lease(holder, 60.0) is not None
    r = client.post("/v1/migrations/m-run/abort", headers=WRITE)
    assert error(r)[:2] == (409, "not_leader")
    body = r.json()
    assert (body["leader"], body["leader_url"]) == (holder, "http://10.0.0.2:8787")
    assert body["detail"] == (
        f"migration m-run is not running in this process; the leader {holder} runs it: "
        "retry there (http://10.0.0.2:8787)"
    )
    assert store.audit_log() == ()


@pytest.mark.usefixtures("journal")
def test_abort_with_no_leader_is_409_saying_so(client: TestClient, ctx: ApiContext) -> None:
    stand_in(ctx).set(leader=False, epoch=None)
    r = client.post("/v1/migrations/m-run/abort", headers=WRITE)
    assert error(r)[:2] == (409, "not_leader")
    assert (r.json()["leader"], r.json()["leader_url"]) == (None, None)
    assert "no instance holds the leader lease" in r.json()["detail"]


@pytest.mark.usefixtures("journal")
def test_abort_on_the_leader_of_a_record_its_executor_lost_is_409(client: TestClient) -> None:
    r = client.post("/v1/migrations/m-run/abort", headers=WRITE)
    status, code, detail = error(r)
    assert (status, code) == (409, "not_leader")
    assert "but this leader (epoch 1) does not hold it" in detail
