"""Leadership: a lease row in the store, renewed by a thread of its own.

Every ``balancer run`` keeps trying to acquire or renew the lease every ``ttl / 3`` seconds, so a
slow tick never lets the lease lapse and a follower notices an expired lease within ``ttl / 3``.
With ttl = the collection interval (the default), a leader that dies is replaced within
``ttl + ttl / 3`` < two ticks. The same code runs on SQLite (one instance) and PostgreSQL (HA):
one path, no special case. The holder id carries the API URL so followers can name the leader.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from balancer.errors import StoreError
from balancer.store import Store

log = logging.getLogger("balancer.ha")


def holder_id(api_url: str) -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}@{api_url}"


class LeaseKeeper:
    """Holds (or waits for) the leader lease in a background thread."""

    def __init__(self, store: Store, holder: str, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.clock = clock
        self._leader_until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-lease", daemon=True)

    def start(self) -> None:
        self.renew()
        self._thread.start()

    def renew(self) -> bool:
        now = self.clock()
        try:
            ok = self.store.acquire_or_renew_lease(self.holder, now, self.ttl)
        except StoreError as exc:
            log.warning("event=lease_error holder=%s error=%r", self.holder, str(exc))
            ok = False
        was = self.is_leader(now)
        self._leader_until = now + self.ttl if ok else 0.0
        if ok != was:
            log.info(
                "event=%s holder=%s ttl=%.1f",
                "leader_acquired" if ok else "leader_lost",
                self.holder,
                self.ttl,
            )
        return ok

    def is_leader(self, now: float) -> bool:
        """True while our last successful renewal has not expired."""
        return now < self._leader_until

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self.renew()

    def stop(self) -> None:
        """Stop renewing and hand the lease over at once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.ttl)
        try:
            self.store.release_lease(self.holder)
        except StoreError as exc:
            log.warning("event=lease_release_failed holder=%s error=%r", self.holder, str(exc))
        self._leader_until = 0.0
