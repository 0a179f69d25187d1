"""What the service does to a drain while `balancer drain --wait` watches it, for the CLI tests."""

from __future__ import annotations

import time

from balancer.store import Store
from balancer.store.records import DrainProgress, DrainRequest, DrainState
from tests.leader import fence_of
from tests.waiting import wait_for


def opened_drain(store: Store) -> DrainRequest:
    """The drain the CLI under test has just requested, once the store holds it."""
    return wait_for(
        "the CLI's drain request", lambda: next(iter(store.drains(state=DrainState.OPEN)), None), 20
    )


def report_then_close(store: Store, progress: DrainProgress, done: DrainProgress) -> None:
    """A tick that reports ``progress``, then, a few CLI polls later, the one that finds the host empty."""
    d = opened_drain(store)
    store.update_drain_progress(d.id, progress, time.time(), fence=fence_of(store))
    time.sleep(0.3)  # not a synchronisation: the watcher may or may not draw this progress; both are right
    store.finish_drain(d.id, time.time(), progress=done, fence=fence_of(store))
