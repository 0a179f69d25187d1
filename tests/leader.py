"""The leader's credentials in tests: ``fence_of(store)`` acquires the lease once per Store (a long TTL)
and returns its Fence, for the store's leader-only writes (plans, drain progress, the journal)."""

from __future__ import annotations

import weakref

from balancer.store import Store
from balancer.store.records import Fence

HOLDER = "test-leader"
_fences: weakref.WeakKeyDictionary[Store, Fence] = weakref.WeakKeyDictionary()


def fence_of(store: Store, holder: str = HOLDER) -> Fence:
    """This test's leader term on ``store`` (acquired at first use; the lease lasts a day)."""
    fence = _fences.get(store)
    if fence is None or fence.holder != holder:
        grant = store.acquire_lease(holder, 86400.0)
        if grant is None:
            lease = store.current_leader()
            assert lease is not None and lease.holder == holder, f"another holder leads: {lease}"
            fence = Fence(holder, lease.epoch)
        else:
            fence = Fence(holder, grant.epoch)
        _fences[store] = fence
    return fence


def journal_of(store: Store):  # type: ignore[no-untyped-def]
    """The executor's JournalStore for the test leader."""
    return store.journal(fence_of(store))


def lead(store: Store, holder: str = HOLDER, ttl: float = 86400.0, wait: float = 60.0) -> Fence:
    """Acquire the lease as ``holder``, waiting up to ``wait`` s for another's to expire; its Fence."""
    from tests.waiting import wait_for

    grant = wait_for(f"the lease for {holder}", lambda: store.acquire_lease(holder, ttl), wait)
    fence = Fence(holder, grant.epoch)
    _fences[store] = fence
    return fence
