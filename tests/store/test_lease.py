"""The leader lease: one holder at a time, renewal, expiry and takeover, and races between instances."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pytest

from balancer.store import Lease, Store


def test_two_holders_contend_and_exactly_one_wins(open_store: Callable[[], Store]) -> None:
    a, b = open_store(), open_store()
    assert a.acquire_or_renew_lease("a", now=100.0, ttl=30.0)
    assert not b.acquire_or_renew_lease("b", now=101.0, ttl=30.0)
    assert b.current_leader(now=101.0) == Lease(name="balancer", holder="a", expires_at=130.0)


def test_the_holder_renews_and_the_other_takes_over_only_after_expiry(store: Store) -> None:
    assert store.acquire_or_renew_lease("a", now=100.0, ttl=30.0)
    assert store.acquire_or_renew_lease("a", now=120.0, ttl=30.0)  # renewed until 150
    assert not store.acquire_or_renew_lease("b", now=149.9, ttl=30.0)
    assert store.acquire_or_renew_lease("b", now=150.0, ttl=30.0)  # held while now < expires_at
    assert store.current_leader(now=151.0) == Lease("balancer", "b", 180.0)
    assert not store.acquire_or_renew_lease("a", now=151.0, ttl=30.0)


def test_nobody_leads_after_expiry_or_release(store: Store) -> None:
    assert store.current_leader(now=0.0) is None
    store.acquire_or_renew_lease("a", now=100.0, ttl=30.0)
    assert store.current_leader(now=130.0) is None
    store.acquire_or_renew_lease("a", now=131.0, ttl=30.0)
    assert not store.release_lease("b")
    assert store.release_lease("a")
    assert store.current_leader(now=132.0) is None
    assert store.acquire_or_renew_lease("b", now=132.0, ttl=30.0)


def test_lease_names_are_independent(store: Store) -> None:
    assert store.acquire_or_renew_lease("a", now=1.0, ttl=10.0, name="loop")
    assert store.acquire_or_renew_lease("b", now=1.0, ttl=10.0, name="other")
    assert store.current_leader(now=2.0, name="loop") == Lease("loop", "a", 11.0)
    assert store.current_leader(now=2.0) is None


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan"), float("inf")])
def test_a_lease_needs_a_positive_finite_ttl(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.acquire_or_renew_lease("a", now=1.0, ttl=ttl)


def _contend(a: Store, b: Store, name: str, now: float) -> dict[str, bool]:
    start = threading.Barrier(2)
    won: dict[str, bool] = {}

    def run(s: Store, holder: str) -> None:
        start.wait()
        won[holder] = s.acquire_or_renew_lease(holder, now=now, ttl=30.0, name=name)

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
            assert old.acquire_or_renew_lease("old", now=0.0, ttl=1.0, name=name)
        won = _contend(a, b, name, now=100.0)
        assert sorted(won.values()) == [False, True], (i, won)
        leader = a.current_leader(now=100.0, name=name)
        assert leader is not None and won[leader.holder], (i, won, leader)


def _process_contender(url: str, holder: str, rounds: int, start: Any, out: Any) -> None:
    with Store.open(url) as s:
        for i in range(rounds):
            start.wait()
            won = s.acquire_or_renew_lease(holder, now=100.0, ttl=30.0, name=f"p{i}")
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
        leader = store.current_leader(now=100.0, name=f"p{i}")
        assert leader is not None and leader.holder == winner
