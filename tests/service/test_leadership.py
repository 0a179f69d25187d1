"""The lease keeper: a term valid until a local monotonic deadline that ends before the store's expiry;
a store error keeps the term until that deadline, never past it; a refused renewal ends it at once; a
lost term is never renewed (real SQLite store; the monotonic clock is injected)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from balancer.service.leadership import LeaderTerm, LeaseKeeper, margin_for
from balancer.store import Store
from tests.clock import ManualClock


def keeper(
    tmp_path: Path, holder: str, ttl: float, clock: ManualClock, changes: list[LeaderTerm | None]
) -> LeaseKeeper:
    store = Store.open(f"sqlite:///{tmp_path}/lease.db", lease_clock=clock)
    return LeaseKeeper(store, holder, ttl, on_change=changes.append, monotonic=clock)


def test_a_term_is_valid_until_its_local_deadline_before_the_stores_expiry(tmp_path: Path) -> None:
    clock, changes = ManualClock(1000.0), []  # type: ignore[var-annotated]
    k = keeper(tmp_path, "a", 10.0, clock, changes)
    term = k.renew()
    assert term is not None and changes == [term] and term.epoch == 1
    deadline = 10.0 - margin_for(10.0)  # 8 s after the renewal was sent
    clock.now += deadline - 0.01
    assert term.valid() and k.term() is term
    clock.now += 0.02
    assert not term.valid() and k.term() is None  # no help from the renewing thread needed
    assert k.store.current_leader() is not None  # the store still says "a": nobody else may act yet


def test_a_store_error_keeps_the_term_until_the_deadline_then_loses_it(tmp_path: Path) -> None:
    clock, changes = ManualClock(1000.0), []  # type: ignore[var-annotated]
    store = Store.open(f"sqlite:///{tmp_path}/lease.db", lease_clock=clock, busy_timeout=0.2)
    k = LeaseKeeper(store, "a", 10.0, on_change=changes.append, monotonic=clock)
    term = k.renew()
    assert term is not None
    locker = sqlite3.connect(tmp_path / "lease.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the store stops answering writes ("database is locked")
    try:
        clock.now += 3.0
        assert k.renew() is term and term.valid()  # a blip shorter than the lease costs nothing
        clock.now += 6.0
        assert k.renew() is None and not term.valid()
        assert changes == [term, None]
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    clock.now += 10.0  # once its own lease has expired, it leads again, in a new term
    again = k.renew()
    assert again is not None and again.epoch == term.epoch + 1


def test_a_refused_renewal_ends_the_term_and_the_next_grant_is_a_new_epoch(tmp_path: Path) -> None:
    clock, changes = ManualClock(1000.0), []  # type: ignore[var-annotated]
    a = keeper(tmp_path, "a", 2.0, clock, changes)
    first = a.renew()
    assert first is not None
    clock.now += 5.0  # the lease expired by the store's (this host's monotonic) clock
    b = keeper(tmp_path, "b", 2.0, clock, [])
    taken = b.renew()
    assert taken is not None and taken.epoch == first.epoch + 1
    assert a.renew() is None and changes == [first, None]  # refused: taken over
    clock.now += 5.0
    again = a.renew()  # b's lease lapsed in turn: a leads again, in a new term
    assert again is not None and again.epoch == taken.epoch + 1 and not first.valid()


def test_stop_hands_the_lease_over_at_once(tmp_path: Path) -> None:
    clock, changes = ManualClock(1000.0), []  # type: ignore[var-annotated]
    a = keeper(tmp_path, "a", 30.0, clock, changes)
    term = a.renew()
    assert term is not None
    a.stop()
    assert not term.valid() and changes == [term, None]
    b = keeper(tmp_path, "b", 30.0, clock, [])
    assert b.renew() is not None  # no need to wait 30 s


def test_a_term_seen_lapsed_never_comes_back_and_a_new_one_starts_at_once(tmp_path: Path) -> None:
    clock, changes = ManualClock(1000.0), []  # type: ignore[var-annotated]
    k = keeper(tmp_path, "a", 10.0, clock, changes)
    first = k.renew()
    assert first is not None
    clock.now += 9.0  # past the local deadline (8 s), before the store's expiry (10 s)
    assert not first.valid()  # the executor's dispatcher sees it and detaches its Runner
    assert k.store.current_leader().epoch == first.epoch  # type: ignore[union-attr]
    second = k.renew()  # a renewal would still be granted by the store: it must not revive the term
    assert second is not None and second.epoch == first.epoch + 1  # no waiting for the store's expiry
    assert not first.valid() and second.valid()
    assert changes == [first, None, second]


def test_a_renewal_granted_after_the_term_was_seen_lapsed_starts_a_new_term(tmp_path: Path) -> None:
    clock, changes = ManualClock(1000.0), []  # type: ignore[var-annotated]
    k = keeper(tmp_path, "a", 10.0, clock, changes)
    first = k.renew()
    assert first is not None
    store_renew = k.store.renew_lease

    def slow_renewal(holder: str, epoch: int, ttl: float) -> object:
        clock.now += 9.0  # the renewal takes longer than the time the term had left...
        assert not first.valid()  # ...and someone saw the deadline pass meanwhile
        return store_renew(holder, epoch, ttl)  # the store still grants it (its expiry is 10 s)

    k.store.renew_lease = slow_renewal  # type: ignore[method-assign]
    second = k.renew()
    assert second is not None and second.epoch == first.epoch + 1
    assert not first.valid() and changes == [first, None, second]
