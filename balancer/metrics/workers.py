"""A pool of daemon threads whose jobs can be abandoned when they overrun their time.

libvirt calls cannot be interrupted: a call to a host that stopped answering blocks its thread until
the socket dies. :meth:`WorkerPool.wait` therefore stops waiting for a job once it has run longer
than the timeout, marks it abandoned and starts a replacement thread, so the pool keeps ``size``
usable workers and the next tick is not stuck behind the hung call. The abandoned thread finishes
its call whenever it returns, hands the result to the job's ``on_late`` (e.g. to close its
connection) and exits. Threads are daemons so a hung call never keeps the process from exiting
(``concurrent.futures`` joins its threads at exit, which is why it is not used here).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job(Generic[T]):
    """One submitted call. Fields are written by the pool under its lock."""

    fn: Callable[[], T]
    on_late: Callable[[T], None] | None = None
    started_at: float | None = None  # monotonic seconds
    finished_at: float | None = None
    result: T | None = None
    error: BaseException | None = None
    done: bool = False
    abandoned: bool = False
    note: dict[str, Any] = field(default_factory=dict)  # progress the job itself reports (e.g. phase)

    @property
    def running_for(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at


class WorkerPool:
    """``size`` daemon threads running jobs from one queue."""

    def __init__(self, size: int, name: str = "balancer-collect") -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._name = name
        self._queue: queue.SimpleQueue[Job[Any] | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._live = 0
        self._spawned = 0
        self._closed = False
        for _ in range(size):
            self._spawn()

    @property
    def live_threads(self) -> int:
        """Threads currently serving the queue (abandoned ones excluded)."""
        return self._live

    def submit(self, fn: Callable[[], T], on_late: Callable[[T], None] | None = None) -> Job[T]:
        if self._closed:
            raise RuntimeError("the pool is closed")
        job: Job[T] = Job(fn=fn, on_late=on_late)
        self._queue.put(job)
        return job

    def wait(self, jobs: Iterable[Job[Any]], timeout: float) -> None:
        """Return when each job is done or abandoned; a job is abandoned ``timeout`` s after it started."""
        jobs = list(jobs)
        with self._cond:
            while True:
                now = time.monotonic()
                deadlines = []
                for job in jobs:
                    if job.done or job.abandoned or job.started_at is None:
                        continue
                    if now - job.started_at >= timeout:
                        job.abandoned = True
                        self._live -= 1
                        self._spawn()
                    else:
                        deadlines.append(job.started_at + timeout)
                if all(j.done or j.abandoned for j in jobs):
                    return
                # queued jobs have no deadline yet; a worker picking one up notifies
                self._cond.wait(timeout=min(deadlines) - now if deadlines else None)

    def close(self) -> None:
        """Let idle threads exit; running (or hung) calls are not waited for."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for _ in range(self._live):
                self._queue.put(None)

    def _spawn(self) -> None:
        self._live += 1
        self._spawned += 1
        t = threading.Thread(target=self._work, name=f"{self._name}-{self._spawned}", daemon=True)
        t.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._cond:
                job.started_at = time.monotonic()
                self._cond.notify_all()
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.fn()
            except BaseException as exc:  # handed to the caller via job.error
                error = exc
            with self._cond:
                job.finished_at = time.monotonic()
                job.result, job.error, job.done = result, error, True
                abandoned = job.abandoned
                self._cond.notify_all()
            if abandoned:
                self._finish_late(job)
                return  # a replacement thread took this one's place

    @staticmethod
    def _finish_late(job: Job[Any]) -> None:
        if job.on_late is None or job.error is not None:
            return
        try:
            job.on_late(job.result)
        except Exception:
            log.exception("event=abandoned_job_cleanup_failed")
