"""When and how long each host is polled: concurrency, the per-host timeout, hung calls and backoff.

Knows nothing about libvirt: a poll function gets the host's kept connection (None = open one) and
returns the sample and the connection to keep (None = drop it). Per tick and host, one of:

* the host is in backoff after a failure → its last error is reported again, nothing is called;
* ``MAX_HUNG_POLLS`` earlier polls of it still hang → reported as a timeout, nothing is called;
* otherwise a poll runs on the worker pool. One that overruns ``host_timeout_seconds`` (counted from
  its start, so queueing behind other hosts does not count) is abandoned: the host is reported with
  a ``timeout``, its connection goes with the hung call (closed whenever the call returns, never
  reused) and the tick does not wait for it.

Any failure moves the host's backoff forward (``reconnect.Backoff`` on the injected ``now``); a
success resets it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from balancer.errors import CollectError
from balancer.metrics.args import CollectionArgs
from balancer.metrics.reconnect import Backoff
from balancer.metrics.source import HostEndpoint, HostSample
from balancer.metrics.workers import Job, WorkerPool

log = logging.getLogger(__name__)

# Abandoned polls of one host that may still hang before no new connection is opened to it (each
# holds a thread and a socket until the host or the network gives up). A hung poll stops counting
# after HUNG_POLL_SECONDS, so a call that never returns cannot keep a host out forever.
MAX_HUNG_POLLS = 3
HUNG_POLL_SECONDS = 600.0


class Connection(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Connection)
# poll(endpoint, kept connection or None, note) → (sample, connection to keep or None); the poll may
# write note["phase"], which the timeout error quotes
PollFn = Callable[[HostEndpoint, C | None, dict[str, Any]], tuple[HostSample, C | None]]


@dataclass
class _Host(Generic[C]):
    """One host's state between ticks; only the thread running collect() touches it."""

    endpoint: HostEndpoint
    conn: C | None = None
    backoff: Backoff = field(default_factory=Backoff)
    last_error: CollectError | None = None
    hung: list[Job[Any]] = field(default_factory=list)


class HostPoller(Generic[C]):
    """Polls every endpoint once per ``collect(now)``; one HostSample per endpoint, in their order."""

    def __init__(self, endpoints: Sequence[HostEndpoint], args: CollectionArgs, poll: PollFn[C]) -> None:
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate host names in {names}")
        self.args = args
        self._poll = poll
        self._hosts: list[_Host[C]] = [_Host(endpoint=e) for e in endpoints]
        self._pool = WorkerPool(args.workers)
        self._lock = threading.Lock()

    def collect(self, now: float) -> list[HostSample]:
        with self._lock:
            jobs: dict[str, Job[tuple[HostSample, C | None]]] = {}
            skipped: dict[str, HostSample] = {}
            for h in self._hosts:
                name = h.endpoint.name
                h.hung = [j for j in h.hung if not j.done and j.running_for < HUNG_POLL_SECONDS]
                if len(h.hung) >= MAX_HUNG_POLLS:
                    err = CollectError(name, "timeout", f"{len(h.hung)} earlier polls still hang")
                    skipped[name] = _down(h.endpoint, err)
                elif not h.backoff.ready(now) and h.last_error is not None:
                    skipped[name] = _down(h.endpoint, h.last_error)
                else:
                    jobs[name] = self._submit(h)
            self._pool.wait(jobs.values(), self.args.host_timeout_seconds)
            samples = [self._settle(h, now, jobs.get(h.endpoint.name), skipped) for h in self._hosts]
            bugs = [j.error for j in jobs.values() if j.done and j.error is not None]
            if bugs:
                raise bugs[0]  # a poll raised instead of returning a failed sample: a bug, not a host
            return samples

    def _submit(self, h: _Host[C]) -> Job[tuple[HostSample, C | None]]:
        conn, h.conn = h.conn, None  # the poll owns the connection until it returns
        note: dict[str, Any] = {"phase": "queued"}
        endpoint = h.endpoint
        job = self._pool.submit(lambda: self._poll(endpoint, conn, note), on_late=_close_late)
        job.note = note
        return job

    def _settle(
        self,
        h: _Host[C],
        now: float,
        job: Job[tuple[HostSample, C | None]] | None,
        skipped: dict[str, HostSample],
    ) -> HostSample:
        name = h.endpoint.name
        if job is None:
            return skipped[name]
        if job.done and job.error is not None:
            return _down(h.endpoint, CollectError(name, "internal", repr(job.error)))  # collect() raises
        if job.done:
            assert job.result is not None
            sample, h.conn = job.result
        else:
            h.hung.append(job)
            limit = self.args.host_timeout_seconds
            err = CollectError(name, "timeout", f"no answer within {limit:g} s ({job.note['phase']})")
            sample = _down(h.endpoint, err, duration=job.running_for)
        if sample.error is None:
            h.backoff, h.last_error = h.backoff.succeeded(), None
        else:
            h.backoff = h.backoff.failed(
                now, self.args.reconnect_min_seconds, self.args.reconnect_max_seconds
            )
            h.last_error = sample.error
            # debug: the service logs each failed poll once per tick (event=collection_failed)
            log.debug("event=collect_failed host=%s error=%r", name, str(sample.error))
        return sample

    def close(self) -> None:
        """Close the kept connections and let idle workers exit; hung calls are left to finish."""
        with self._lock:
            for h in self._hosts:
                if h.conn is not None:
                    h.conn.close()
                    h.conn = None
            self._pool.close()


def _down(endpoint: HostEndpoint, error: CollectError, duration: float = 0.0) -> HostSample:
    return HostSample(endpoint=endpoint, sampled_at=time.monotonic(), error=error, duration_seconds=duration)


def _close_late(result: tuple[HostSample, Connection | None]) -> None:
    if result[1] is not None:
        result[1].close()
