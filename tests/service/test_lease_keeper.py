"""More of LeaseKeeper (test_leadership.py has its deadline, store errors and refusals): holder ids and
margins, renewals that keep one term, a second instance waiting its turn, the renewing thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from balancer.service.leadership import LeaseKeeper, holder_id, margin_for
from balancer.store import Store
from tests.clock import ManualClock


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/lease.db"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open(url) as s:
        yield s


def keeper(
    store: Store, name: str, clock: ManualClock, ttl: float = 30.0
) -> tuple[LeaseKeeper, list[object]]:
    changes: list[object] = []
    k = LeaseKeeper(store, name, ttl, on_change=changes.append, monotonic=clock)
    return k, changes


def test_holder_ids_name_the_api_and_margins_are_a_fifth_of_the_ttl_at_most_two_seconds() -> None:
    a, b = holder_id("http://10.0.0.1:8787"), holder_id("http://10.0.0.1:8787")
    assert a.endswith("@http://10.0.0.1:8787") and a != b  # unique per process start
    assert (margin_for(5.0), margin_for(30.0)) == (1.0, 2.0)


def test_renewals_keep_the_term_and_move_its_deadline(store: Store) -> None:
    clock = ManualClock(1000.0)
    k, changes = keeper(store, "one", clock)
    first = k.renew()
    clock.now += 20.0
    assert k.renew() is first  # same epoch, same term object
    clock.now += 20.0  # 40 s after the grant, 20 after the renewal
    assert first is not None and first.valid()
    assert changes == [first]


def test_a_second_keeper_waits_and_takes_over_once_the_first_stops(store: Store, url: str) -> None:
    clock = ManualClock(1000.0)
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
