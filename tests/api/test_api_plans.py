"""/v1/plans: list, detail (moves with reasons, costs, before/after; skips), approve/reject and their 409s."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from balancer.store import Store
from balancer.store.records import MoveStatus, PlanStatus
from tests.api.harness import NOW, READ, WRITE, error, plan, problems
from tests.leader import fence_of


@pytest.fixture
def plan_id(store: Store) -> int:
    return store.save_plan(plan(), "recommend", NOW, fence=fence_of(store)).id


def test_plans_are_listed_newest_first_and_filtered_by_status(client: TestClient, store: Store) -> None:
    first = store.save_plan(plan(), "recommend", NOW, fence=fence_of(store)).id
    second = store.save_plan(plan(), "auto", NOW, status=PlanStatus.APPROVED, fence=fence_of(store)).id
    listed = client.get("/v1/plans", headers=READ).json()
    assert [p["id"] for p in listed] == [second, first]
    assert listed[1] | {"updated_at": 0} == {
        "id": first,
        "status": "proposed",
        "automation": "recommend",
        "created_at": NOW,
        "updated_at": 0,
        "decided_by": None,
        "decided_at": None,
        "move_count": 2,
        "skip_count": 1,
        "moves_by_status": {"proposed": 2},
        "predicted_bytes": 2 * 9 * 2**30,
        "imbalance_before": 0.3,
        "imbalance_after": 0.1,
        "expires_at": None,
    }
    assert [p["id"] for p in client.get("/v1/plans?status=approved", headers=READ).json()] == [second]
    assert len(client.get("/v1/plans?limit=1", headers=READ).json()) == 1


def test_a_plan_shows_each_move_with_reason_cost_and_load_before_after(
    client: TestClient, plan_id: int
) -> None:
    p = client.get(f"/v1/plans/{plan_id}", headers=READ).json()
    assert [(m["index"], m["vm"], m["source"], m["target"], m["reason"]) for m in p["moves"]] == [
        (0, "web-1", "h1", "h2", "balance"),
        (1, "web-2", "h1", "h3", "balance"),
    ]
    m = p["moves"][0]
    assert m["cost"] == {
        "disk_bytes": 5 * 2**30,
        "backing_bytes": 0,
        "memory_bytes": 4 * 2**30,
        "total_bytes": 9 * 2**30,
        "seconds": 90.0,
        "copy_mode": "incremental",
        "converges": True,
    }
    assert m["source_load"] == {"before": {"cpu": 0.8}, "after": {"cpu": 0.55}}
    assert m["detail"] == "web-1: h1 cpu 0.80 -> 0.55"
    assert p["skips"] == [
        {"subject": "vm", "name": "db-1", "reason": "no_memory", "detail": "no host with 64 GiB free"}
    ]
    assert p["overloaded_before"] == ["h1"]


def test_an_unknown_plan_is_404_and_a_bad_id_422(client: TestClient) -> None:
    r = client.get("/v1/plans/999", headers=READ)
    assert error(r) == (404, "plan_not_found", "plan 999 does not exist")
    r = client.get("/v1/plans/0", headers=READ)
    assert problems(r) == [{"field": "plan_id", "value": "0", "message": "is not >= 1"}]
    (problem,) = problems(client.get("/v1/plans?status=maybe", headers=READ))
    assert problem["field"] == "status"
    assert "is not one of 'proposed', 'approved'" in problem["message"]


def test_approve_then_reject_then_approve_again_is_409(
    client: TestClient, store: Store, plan_id: int
) -> None:
    r = client.post(f"/v1/plans/{plan_id}/approve", headers=WRITE)
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["decided_by"]) == ("approved", "ops")
    assert {m["status"] for m in r.json()["moves"]} == {"approved"}
    r = client.post(f"/v1/plans/{plan_id}/reject", headers=WRITE)
    assert r.json()["status"] == "rejected"
    r = client.post(f"/v1/plans/{plan_id}/approve", headers=WRITE)
    assert error(r) == (
        409,
        "plan_closed",
        f"plan {plan_id} is rejected; it can no longer be approved or rejected",
    )
    assert store.get_plan(plan_id).status == PlanStatus.REJECTED
    actions = [(e.actor, e.action, e.subject) for e in store.audit_log()][::-1]
    assert actions == [("ops", "plan.approve", f"plan/{plan_id}"), ("ops", "plan.reject", f"plan/{plan_id}")]


def test_approving_twice_is_a_no_op(client: TestClient, plan_id: int) -> None:
    assert client.post(f"/v1/plans/{plan_id}/approve", headers=WRITE).status_code == 200
    assert client.post(f"/v1/plans/{plan_id}/approve", headers=WRITE).json()["status"] == "approved"


def test_moves_are_approved_and_rejected_one_by_one(client: TestClient, store: Store, plan_id: int) -> None:
    r = client.post(f"/v1/plans/{plan_id}/moves/1/reject", headers=WRITE)
    assert r.status_code == 200
    assert (r.json()["index"], r.json()["vm"], r.json()["status"], r.json()["decided_by"]) == (
        1,
        "web-2",
        "rejected",
        "ops",
    )
    r = client.post(f"/v1/plans/{plan_id}/moves/0/approve", headers=WRITE)
    assert r.json()["status"] == "approved"
    assert [m.status for m in store.get_plan(plan_id).moves] == [MoveStatus.APPROVED, MoveStatus.REJECTED]
    assert store.audit_log(limit=1)[0].subject == f"plan/{plan_id}/move/0"


def test_a_started_move_cannot_be_rejected(client: TestClient, store: Store, plan_id: int) -> None:
    store.set_move_status(plan_id, 0, MoveStatus.STARTED, migration_id="m1", fence=fence_of(store))
    r = client.post(f"/v1/plans/{plan_id}/moves/0/reject", headers=WRITE)
    status, code, detail = error(r)
    assert (status, code) == (409, "move_closed")
    assert "move 0 is started" in detail


def test_an_unknown_move_is_404(client: TestClient, plan_id: int) -> None:
    r = client.post(f"/v1/plans/{plan_id}/moves/7/approve", headers=WRITE)
    assert error(r) == (404, "move_not_found", f"plan {plan_id} has no move 7 (it has 2)")
    assert error(client.post("/v1/plans/999/moves/0/approve", headers=WRITE))[:2] == (404, "plan_not_found")
