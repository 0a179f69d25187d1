"""The service's loop: a tick every ``collection.interval_seconds``, intake in between, on the monotonic
clock.

APScheduler 3.x (used before) schedules on the wall clock (``datetime.now()`` in its scheduler and its
executors' misfire check): a backward step of the host's clock stopped every tick for as long as the
step, while the lease went on renewing, so nobody took over and the API stayed ready. A tick every
interval, one at a time, late ticks coalesced into one, is a few lines on ``time.monotonic()``, which
no clock step moves. Between ticks the leader runs ``intake`` every ``service.intake_seconds`` (or at
once when woken), so approvals and undrains act within about a second, not a tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from balancer.service.core import Service

log = logging.getLogger("balancer.daemon")


class Loop:
    """Runs ticks and intake until ``stop`` is set; ``wake()`` cuts the wait short."""

    def __init__(
        self,
        service: Service,
        interval: float,
        intake_seconds: float,
        on_tick: Callable[[int], None] = lambda _n: None,
        between: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.interval = interval
        self.intake_seconds = intake_seconds
        self.on_tick = on_tick  # after each tick, with the count so far (readiness after the first)
        self.between = between  # between steps, in this thread (config reloads)
        self.monotonic = monotonic
        self._wake = threading.Event()
        self._due_now = False
        self.ticks = 0

    def wake(self) -> None:
        self._wake.set()

    def tick_now(self) -> None:
        """Run the next tick at once (a new leader adopts and plans without waiting an interval)."""
        self._due_now = True
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        next_tick = self.monotonic()
        while not stop.is_set():
            self.between()
            now = self.monotonic()
            if self._due_now:
                self._due_now = False
                next_tick = now
            if now >= next_tick:
                self.service.tick()
                self.ticks += 1
                self.on_tick(self.ticks)
                next_tick += self.interval
                after = self.monotonic()
                if next_tick <= after:  # the tick overran: one coalesced tick now, none queued up
                    skipped = int((after - next_tick) // self.interval)
                    if skipped:
                        log.warning("event=ticks_coalesced skipped=%d interval=%.1f", skipped, self.interval)
                    next_tick = after
                continue
            self.service.intake()
            wait = min(next_tick, self.monotonic() + self.intake_seconds) - self.monotonic()
            if wait > 0 and self._wake.wait(wait):
                self._wake.clear()
