"""Leadership: the lease held in a thread of its own, and the term (epoch) it grants.

Every ``balancer run`` tries to acquire or renew the lease every ``ttl / 3`` seconds. A grant makes
this process leader of ``epoch`` until a local deadline on the monotonic clock:

    valid_until = (monotonic time the renewal was sent) + ttl - margin

The store judges expiry on its own clock from the moment it ran the statement, which is after the
request was sent, so the local deadline always falls before the store lets anyone take over (the
margin covers clocks that tick at slightly different rates). ``LeaderTerm.valid()`` compares the
monotonic clock with that deadline at every use: a process paused by SIGSTOP, or whose store is
unreachable, stops acting the moment its deadline passes, with no help from this thread (which may be
blocked in a store call itself). A store blip shorter than the lease costs nothing: renewals simply
retry; leadership ends only when the deadline passes or the store refuses the renewal (expired, or
taken over). A lost term is never renewed: the next grant is a new epoch.

A term's validity is monotone: once anyone has seen its deadline pass (the executor's dispatcher, which
then stops admitting and detaches its Runner), the term is over for good, even if a renewal that was
already on its way comes back granted. The keeper then takes a new term at once (the store lets a holder
replace its own lease, in a new epoch), so the new term adopts what the lapsed one left, queued moves
included. Reviving the lapsed term instead would leave a detached Runner serving a "valid" term: every
queued move stuck, nothing started again until a restart (seen under CI load with a 1 s lease).

With ttl = one collection interval (the default), a leader that dies is replaced within
``ttl + ttl / 3``, under two ticks. The holder id carries the API URL so followers can name the leader.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from balancer.errors import StoreError
from balancer.store import Store
from balancer.store.records import Fence

log = logging.getLogger("balancer.ha")


def holder_id(api_url: str) -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}@{api_url}"


def margin_for(ttl: float) -> float:
    """Safety margin between the local deadline and the store's expiry."""
    return min(0.2 * ttl, 2.0)


@dataclass(frozen=True)
class LeaderTerm:
    """One term of leadership: the executor's Term (fence.py) and the store's Fence."""

    epoch: int
    fence: Fence
    keeper: LeaseKeeper

    def valid(self) -> bool:
        return self.keeper.valid_for(self.epoch)


class LeaseKeeper:
    """Holds (or waits for) the leader lease in a background thread."""

    def __init__(
        self,
        store: Store,
        holder: str,
        ttl: float,
        *,
        on_change: Callable[[LeaderTerm | None], None] = lambda _term: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.on_change = on_change
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._term: LeaderTerm | None = None
        self._valid_until = 0.0
        self._lapsed = False  # someone saw the held term's deadline pass: it is over for good
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-lease", daemon=True)

    @property
    def margin(self) -> float:
        return margin_for(self.ttl)

    # -- what the rest of the service asks --------------------------------------------
    def term(self) -> LeaderTerm | None:
        """The term this process leads now, or None."""
        with self._lock:
            return self._term if self._alive_locked() else None

    def valid_for(self, epoch: int) -> bool:
        with self._lock:
            return self._term is not None and self._term.epoch == epoch and self._alive_locked()

    def _alive_locked(self) -> bool:
        """Whether the held term's deadline is still ahead; the first reading past it ends the term."""
        if self._term is None or self._lapsed:
            return False
        if self.monotonic() < self._valid_until:
            return True
        self._lapsed = True
        return False

    def is_leader(self) -> bool:
        return self.term() is not None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.renew()
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and hand the lease over at once (another instance need not wait for expiry)."""
        self._stop.set()
        with self._lock:
            term, self._term, self._valid_until, self._lapsed = self._term, None, 0.0, False
        if self._thread.is_alive():
            self._thread.join(timeout=self.ttl)
        if term is not None:
            try:
                self.store.release_lease(self.holder, term.epoch)
            except StoreError as exc:
                log.warning("event=lease_release_failed holder=%s error=%r", self.holder, str(exc))
            self.on_change(None)

    def renew(self) -> LeaderTerm | None:
        """One round: renew our term, or acquire a new one; returns the term held afterwards."""
        with self._lock:
            held = self._term
            lapsed = held is not None and not self._alive_locked()
        if lapsed:
            assert held is not None
            self._lose(held, "its deadline passed before a renewal reached the store")
            held = None
        sent = self.monotonic()
        try:
            if held is not None:
                grant = self.store.renew_lease(self.holder, held.epoch, self.ttl)
                if grant is None:
                    self._lose(held, "the store refused the renewal (expired or taken over)")
                    held = None
            if held is None:
                grant = self.store.acquire_lease(self.holder, self.ttl)
        except StoreError as exc:
            log.warning("event=lease_error holder=%s error=%r", self.holder, str(exc))
            grant = None
            if held is not None:
                self._expire_if_due(held)
                return self.term()
        if grant is None:
            return None
        fresh = held is None or held.epoch != grant.epoch
        term = LeaderTerm(grant.epoch, Fence(self.holder, grant.epoch), self) if fresh else held
        assert term is not None
        with self._lock:
            revived = not fresh and (self._term is not held or self._lapsed)
            if not revived:
                self._term, self._lapsed = term, False
                self._valid_until = sent + self.ttl - self.margin
        if revived:
            # the deadline passed (and was seen) while this renewal was on its way: that term stays over
            assert held is not None
            self._lose(held, "its deadline passed while the renewal was on its way")
            return self.renew()
        if fresh:
            log.info("event=leader_acquired holder=%s epoch=%d ttl=%.1f", self.holder, term.epoch, self.ttl)
            self.on_change(term)
        return term

    def _expire_if_due(self, held: LeaderTerm) -> None:
        with self._lock:
            due = self._term is held and not self._alive_locked()
        if due:
            self._lose(held, "no renewal reached the store before the lease's deadline")

    def _lose(self, held: LeaderTerm, why: str) -> None:
        with self._lock:
            if self._term is not held:
                return
            self._term, self._valid_until, self._lapsed = None, 0.0, False
        log.warning("event=leader_lost holder=%s epoch=%d why=%r", self.holder, held.epoch, why)
        self.on_change(None)

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self.renew()
