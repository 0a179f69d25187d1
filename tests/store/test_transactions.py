"""A write that fails half way leaves nothing behind: the first statement is rolled back with the rest."""

from __future__ import annotations

import pytest

from balancer.errors import StoreError
from balancer.model import MoveCost
from balancer.store import Store
from tests.leader import fence_of

from .builders import move, plan


def test_a_drain_whose_audit_entry_fails_is_not_recorded(store: Store) -> None:
    # The drain row is inserted first (its deadline column takes NaN); the audit entry's strict JSON
    # then refuses NaN, so the drain must vanish with it.
    with pytest.raises(StoreError, match=r"create_drain n1: .*JSON"):
        store.create_drain("n1", "alice", now=10.0, deadline=float("nan"))
    assert store.drains() == ()
    assert store.audit_log() == ()
    drain, created = store.create_drain("n1", "alice", now=11.0)
    assert created and store.drains() == (drain,)


def test_a_plan_whose_move_row_fails_is_not_recorded(store: Store) -> None:
    # The plan row goes in first; the second move's negative byte count breaks a CHECK constraint.
    bad = plan(move("vm1"), move("vm2", cost=MoveCost(-1, 0, 0, 1.0)))
    with pytest.raises(StoreError, match=r"save_plan: .*(bytes|CHECK|check)"):
        store.save_plan(bad, "recommend", now=100.0, fence=fence_of(store))
    assert store.plans() == ()
    assert store.save_plan(plan(), "recommend", now=101.0, fence=fence_of(store)).moves != ()


def test_a_failed_write_leaves_the_store_usable(store: Store) -> None:
    with pytest.raises(StoreError):
        store.save_plan(plan(move(cost=MoveCost(1 << 70, 0, 0, 1.0))), "auto", now=1.0, fence=fence_of(store))
    assert store.plans() == ()
    store.create_drain("n1", "alice", now=2.0)
    assert [d.host for d in store.drains()] == ["n1"]
