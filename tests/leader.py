"""The leader's credentials in tests: ``fence_of(store)`` holds the lease as the test's leader (taking
it when free, waiting while another holder's lease runs out) and returns its Fence, for the store's
leader-only writes (plans, drain progress, the journal, the volume ledger)."""

from __future__ import annotations

from balancer.store import FencedJournal, Store
from balancer.store.records import Fence
from tests.waiting import wait_for

HOLDER = "test-leader"


def fence_of(store: Store, holder: str = HOLDER, ttl: float = 86400.0, wait: float = 60.0) -> Fence:
    """``holder``'s term on ``store``: the current one if it leads, else a new one once the lease is free."""
    current = store.current_leader()
    if current is not None and current.holder == holder:
        return Fence(holder, current.epoch)
    grant = wait_for(f"the lease for {holder}", lambda: store.acquire_lease(holder, ttl), wait)
    return Fence(holder, grant.epoch)


def lead(store: Store, holder: str = HOLDER, ttl: float = 86400.0, wait: float = 60.0) -> Fence:
    """A new term for ``holder`` (waiting for another's lease to expire), even if it led before."""
    store.release_lease(holder)
    return fence_of(store, holder, ttl, wait)


def journal_of(store: Store, holder: str = HOLDER) -> FencedJournal:
    """The executor's JournalStore (and volume ledger) for ``holder``'s term."""
    return store.journal(fence_of(store, holder))
