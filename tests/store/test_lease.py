"""The leader lease: one holder at a time, a new epoch per change of holder, expiry by the store's clock,
fenced writes that fail closed, and races between instances (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from balancer.errors import LeaseLost
from balancer.store import Store
from balancer.store.records import Fence
from tests.store.builders import plan, record
from tests.waiting import wait_for


def test_two_holders_contend_and_exactly_one_wins(open_store: Callable[[], Store]) -> None:
    a, b = open_store(), open_store()
    grant = a.acquire_lease("a", ttl=30.0)
    assert grant is not None and grant.epoch == 1
    assert b.acquire_lease("b", ttl=30.0) is None
    lease = b.current_leader()
    assert lease is not None and (lease.holder, lease.epoch) == ("a", 1)


def test_the_holder_renews_its_term_and_nobody_else_can(store: Store) -> None:
    grant = store.acquire_lease("a", ttl=30.0)
    assert grant is not None
    again = store.renew_lease("a", grant.epoch, ttl=30.0)
    assert again is not None and again.epoch == grant.epoch and again.expires_at >= grant.expires_at
    assert store.renew_lease("b", grant.epoch, ttl=30.0) is None  # not the holder
    assert store.renew_lease("a", grant.epoch + 1, ttl=30.0) is None  # not its term


def test_an_expired_lease_is_never_renewed_and_is_taken_in_a_new_epoch(store: Store) -> None:
    first = store.acquire_lease("a", ttl=0.3)
    assert first is not None
    wait_for("the lease to expire by the store's clock", lambda: store.current_leader() is None, 10)
    assert store.renew_lease("a", first.epoch, ttl=30.0) is None  # expired: the old term is over
    again = store.acquire_lease("a", ttl=30.0)  # even the same holder starts a new term
    assert again is not None and again.epoch == first.epoch + 1
    assert store.acquire_lease("b", ttl=30.0) is None


def test_another_instance_takes_over_only_after_expiry_in_a_higher_epoch(
    open_store: Callable[[], Store],
) -> None:
    a, b = open_store(), open_store()
    first = a.acquire_lease("a", ttl=0.5)
    assert first is not None
    assert b.acquire_lease("b", ttl=30.0) is None  # still held
    taken = wait_for("b to take the expired lease", lambda: b.acquire_lease("b", ttl=30.0), 10)
    assert taken.epoch == first.epoch + 1
    lease = a.current_leader()
    assert lease is not None and (lease.holder, lease.epoch) == ("b", taken.epoch)


def test_release_hands_over_at_once_and_epochs_keep_growing(store: Store) -> None:
    a = store.acquire_lease("a", ttl=30.0)
    assert a is not None
    assert not store.release_lease("b")
    assert store.release_lease("a", a.epoch)
    assert store.current_leader() is None
    b = store.acquire_lease("b", ttl=30.0)
    assert b is not None and b.epoch == a.epoch + 1  # a released lease keeps its epoch


def test_lease_names_are_independent(store: Store) -> None:
    assert store.acquire_lease("a", ttl=10.0, name="loop") is not None
    assert store.acquire_lease("b", ttl=10.0, name="other") is not None
    lease = store.current_leader(name="loop")
    assert lease is not None and lease.holder == "a"
    assert store.current_leader() is None


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan"), float("inf")])
def test_a_lease_needs_a_positive_finite_ttl(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.acquire_lease("a", ttl=ttl)


def test_leader_only_writes_fail_closed_for_a_fence_that_no_longer_holds(
    open_store: Callable[[], Store],
) -> None:
    a, b = open_store(), open_store()
    first = a.acquire_lease("a", ttl=0.5)
    assert first is not None
    old = Fence("a", first.epoch)
    row = a.save_plan(plan(), "auto", 1.0, fence=old)  # while it holds: accepted
    a.journal(old).create_record(record("m1"))
    wait_for("b to take over", lambda: b.acquire_lease("b", ttl=30.0), 10)
    with pytest.raises(LeaseLost, match=f"epoch {first.epoch}"):
        a.save_plan(plan(), "auto", 2.0, fence=old)
    with pytest.raises(LeaseLost):
        a.journal(old).create_record(record("m2"))
    stored = a.get_record("m1")
    with pytest.raises(LeaseLost):
        a.journal(old).update_record(stored, stored.state)
    assert [p.id for p in a.plans()] == [row.id]  # nothing the old leader tried landed
    assert a.unfinished_records() == (stored,)


def test_the_sqlite_lease_ignores_the_wall_clock_and_a_reboot_expires_it(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/lease.db"
    fake = [1000.0]
    with Store.open(url, lease_clock=lambda: fake[0]) as store:
        grant = store.acquire_lease("a", ttl=30.0)
        assert grant is not None
        fake[0] += 29.0  # a wall-clock step would not move this clock; only elapsed time does
        assert store.current_leader() is not None
        fake[0] += 2.0
        assert store.current_leader() is None
        assert store.acquire_lease("a", ttl=30.0) is not None
    # a lease written in another boot (another monotonic clock) is expired whatever its numbers say
    with Store.open(url) as store, store._db.write("fake another boot") as conn:
        conn.exec_driver_sql("UPDATE leader SET clock = 'boot:another', expires_at = 1e300")
    with Store.open(url) as store:
        assert store.current_leader() is None
        assert store.acquire_lease("b", ttl=30.0) is not None


def _contend(a: Store, b: Store, name: str) -> dict[str, bool]:
    start = threading.Barrier(2)
    won: dict[str, bool] = {}

    def run(s: Store, holder: str) -> None:
        start.wait()
        won[holder] = s.acquire_lease(holder, ttl=30.0, name=name) is not None

    threads = [threading.Thread(target=run, args=(s, h)) for s, h in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_two_instances_acquiring_at_the_same_instant_never_both_win(open_store: Callable[[], Store]) -> None:
    a, b, old = open_store(), open_store(), open_store()
    for i in range(50):
        name = f"race{i}"
        if i % 2:  # an expired lease of a third instance: both race the UPDATE, not the INSERT
            assert old.acquire_lease("old", ttl=0.01, name=name) is not None
            time.sleep(0.02)  # let that lease expire (the test's premise, not a synchronisation)
        won = _contend(a, b, name)
        assert sorted(won.values()) == [False, True], (i, won)
        leader = a.current_leader(name=name)
        assert leader is not None and won[leader.holder], (i, won, leader)


def _process_contender(url: str, holder: str, rounds: int, start: Any, out: Any) -> None:
    with Store.open(url) as s:
        for i in range(rounds):
            start.wait()
            won = s.acquire_lease(holder, ttl=30.0, name=f"p{i}") is not None
            out.put((i, holder, won))


def test_two_processes_acquiring_at_the_same_instant_never_both_win(store: Store, store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_process_contender, args=(store_url, h, 50, start, out)) for h in "ab"]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in range(100)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for i in range(50):
        assert sorted(won for n, _, won in results if n == i) == [False, True], i
        winner = next(h for n, h, won in results if n == i and won)
        leader = store.current_leader(name=f"p{i}")
        assert leader is not None and leader.holder == winner
