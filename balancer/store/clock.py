"""The store's clock without a round-trip: this host's monotonic clock plus an offset measured against it.

Every instant the service stamps (journal records, drains, plans, cooldowns) is read here, so a step of
this host's wall clock changes nothing: the offset is fixed when the store opens (SQLite: the host's
wall clock then; PostgreSQL: the server's ``clock_timestamp()``) and, on PostgreSQL, re-measured at
every lease acquire or renew, so instances stamp on the server's clock (what every instance shares).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StoreClock:
    """``now()``: epoch seconds on the store's clock; monotonic between measurements."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._offset = time.time() - monotonic()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._monotonic() + self._offset

    def observe(self, store_now: float, sent: float, received: float) -> None:
        """The store said ``store_now`` during a round-trip between monotonic ``sent`` and ``received``."""
        with self._lock:
            self._offset = store_now - (sent + received) / 2.0
