"""The leader lease held by LeaseKeeper (service/leadership.py) on a real store, with the monotonic clock
injected: a term is valid until its local deadline whatever the lease thread does, a refused renewal or a
store that stays away past the deadline ends it, a stopped keeper hands the lease over at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from balancer.service.leadership import LeaderTerm, LeaseKeeper, holder_id, margin_for
from balancer.store import Store


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/lease.db"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open(url) as s:
        yield s


def keeper(store: Store, name: str, clock: Clock, ttl: float = 30.0) -> tuple[LeaseKeeper, list[object]]:
    changes: list[object] = []
    k = LeaseKeeper(store, name, ttl, on_change=changes.append, monotonic=clock)
    return k, changes


def test_holder_ids_name_the_api_and_margins_are_a_fifth_of_the_ttl_at_most_two_seconds() -> None:
    a, b = holder_id("http://10.0.0.1:8787"), holder_id("http://10.0.0.1:8787")
    assert a.endswith("@http://10.0.0.1:8787") and a != b  # unique per process start
    assert (margin_for(5.0), margin_for(30.0)) == (1.0, 2.0)


def test_a_grant_is_a_term_valid_until_its_local_deadline(store: Store) -> None:
    clock = Clock()
    k, changes = keeper(store, "one", clock)
    term = k.renew()
    assert isinstance(term, LeaderTerm) and term.epoch == 1 and term.fence.epoch == 1
    assert changes == [term] and k.is_leader() and k.term() is term
    clock.now += 30.0 - 2.0 - 0.01  # ttl - margin: still inside
    assert term.valid() and k.valid_for(1) and not k.valid_for(2)
    clock.now += 0.02  # the deadline passed: no store call needed to stop acting
    assert not term.valid() and k.term() is None and not k.is_leader()


def test_renewals_keep_the_term_and_move_its_deadline(store: Store) -> None:
    clock = Clock()
    k, changes = keeper(store, "one", clock)
    first = k.renew()
    clock.now += 20.0
    assert k.renew() is first  # same epoch, same term object
    clock.now += 20.0  # 40 s after the grant, 20 after the renewal
    assert first is not None and first.valid()
    assert changes == [first]


def test_a_second_keeper_waits_and_takes_over_once_the_first_stops(store: Store, url: str) -> None:
    clock = Clock()
    one, one_changes = keeper(store, "one", clock)
    with Store.open(url) as other:
        two, two_changes = keeper(other, "two", clock)
        assert one.renew() is not None
        assert two.renew() is None and two_changes == []
        one.stop()  # hands the lease over: no waiting for expiry
        assert one_changes[-1] is None and one.term() is None
        term = two.renew()
        assert term is not None and term.epoch == 2 and two_changes == [term]
        assert store.current_leader().holder == "two"  # type: ignore[union-attr]


def test_a_refused_renewal_ends_the_term_and_a_new_grant_is_a_new_epoch(store: Store, url: str) -> None:
    clock = Clock()
    k, changes = keeper(store, "one", clock)
    old = k.renew()
    assert old is not None
    with Store.open(url) as other:
        assert other.release_lease("one", old.epoch)  # someone ended it in the store (as an expiry would)
        assert other.acquire_lease("intruder", 60.0) is not None
    assert k.renew() is None
    assert changes == [old, None] and not old.valid()
    with Store.open(url) as other:
        other.release_lease("intruder", 2)
    new = k.renew()
    assert new is not None and new.epoch == 3 and new is not old


def test_a_store_that_fails_keeps_the_term_until_its_deadline_then_ends_it(store: Store, url: str) -> None:
    clock = Clock()
    k, changes = keeper(store, "one", clock)
    term = k.renew()
    db = url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE leader RENAME TO leader_away")  # every lease statement now fails
    clock.now += 10.0
    assert (
        k.renew() is term and term is not None and term.valid()
    )  # a blip shorter than the lease costs nothing
    clock.now += 20.0  # past ttl - margin since the last renewal that reached the store
    assert k.renew() is None
    assert changes == [term, None]
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE leader_away RENAME TO leader")


def test_the_thread_renews_until_stopped(store: Store) -> None:
    k = LeaseKeeper(store, "threaded", ttl=0.3)
    k.start()
    try:
        term = k.term()
        assert term is not None  # start() renews once before the thread runs
        lease = store.current_leader()
        assert lease is not None and lease.holder == "threaded"
    finally:
        k.stop()
    assert store.current_leader() is None
