"""Executor events → metrics, one structured log line per decision, live progress, and the outcome queue.

The sink runs in the executor's worker threads and never blocks for long: outcomes are handed to the
service through ``on_finished`` (a queue the tick drains), so the store's plan bookkeeping and the
efficacy checks happen in the service's own loop, one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from balancer.api.schemas import ProgressNow
from balancer.executor.events import Event, Finished, Note, Outcome, Progress, StateChanged, Waiting
from balancer.metrics.export import Metrics

log = logging.getLogger("balancer.executor")


class ServiceSink:
    """The Runners' EventSink in the service. Called from worker threads."""

    def __init__(self, metrics: Metrics, on_finished: Callable[[Outcome], None]) -> None:
        self.metrics = metrics
        self.on_finished = on_finished
        self._progress: dict[str, Progress] = {}
        self._lock = threading.Lock()

    def progress(self, record_id: str) -> ProgressNow | None:
        """The last progress event of a running move (None once it ended, or never polled)."""
        with self._lock:
            p = self._progress.get(record_id)
        if p is None:
            return None
        return ProgressNow(
            phase=p.phase,
            bytes_copied=p.bytes_copied,
            bytes_remaining=p.bytes_remaining,
            rate_bytes_s=p.rate_bytes_s,
            elapsed_seconds=p.elapsed_s,
            memory_iteration=p.memory_iteration,
        )

    def retain(self, record_ids: set[str]) -> None:
        """Forget progress of moves no longer held (left to another leader without a Finished event)."""
        with self._lock:
            for rid in [r for r in self._progress if r not in record_ids]:
                del self._progress[rid]
        self._export_bandwidth()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            with self._lock:
                self._progress[event.record_id] = event
            self._export_bandwidth()
        elif isinstance(event, StateChanged):
            r = event.record
            log.info(
                "event=migration_state id=%s vm=%s source=%s target=%s state=%s previous=%s epoch=%d "
                "detail=%r",
                r.id,
                r.vm,
                r.source,
                r.target,
                r.state.value,
                event.previous.value if event.previous else None,
                r.epoch,
                r.detail,
            )
        elif isinstance(event, Waiting):
            log.info(
                "event=migration_waiting id=%s vm=%s reason=%s detail=%r",
                event.record_id,
                event.vm,
                event.reason.value,
                event.detail,
            )
        elif isinstance(event, Note):
            reason = event.reason.value if event.reason else None
            if event.action is not None:
                self.metrics.convergence_actions.labels(event.action).inc()
            log.info(
                "event=migration_note id=%s vm=%s reason=%s action=%s message=%r",
                event.record_id,
                event.vm,
                reason,
                event.action,
                event.message,
            )
        elif isinstance(event, Finished):
            self._finished(event.outcome)

    def _finished(self, out: Outcome) -> None:
        r = out.record
        with self._lock:
            self._progress.pop(r.id, None)
        self._export_bandwidth()
        self.metrics.migrations_finished.labels(out.status.value, out.reason.value).inc()
        self.metrics.copied_bytes.labels("disk").inc(r.disk_bytes)
        self.metrics.copied_bytes.labels("memory").inc(r.memory_bytes)
        self.metrics.copied_bytes.labels("backing").inc(r.backing_bytes)
        if r.started_at is not None and r.finished_at is not None:
            self.metrics.migration_duration.observe(max(0.0, r.finished_at - r.started_at))
        if r.downtime_ms is not None:
            self.metrics.downtime.observe(r.downtime_ms / 1000.0)
        error = f"{r.error_message} (libvirt code {r.error_code})" if r.error_message else None
        log.log(
            logging.INFO if out.ok else logging.WARNING,
            "event=migration_finished id=%s vm=%s source=%s target=%s result=%s reason=%s bytes=%d error=%r",
            r.id,
            r.vm,
            r.source,
            r.target,
            out.status.value,
            out.reason.value,
            r.disk_bytes + r.memory_bytes + r.backing_bytes,
            error,
        )
        self.on_finished(out)

    def _export_bandwidth(self) -> None:
        with self._lock:
            per_host: dict[str, float] = {}
            for p in self._progress.values():
                per_host[p.source] = per_host.get(p.source, 0.0) + p.rate_bytes_s
                per_host[p.target] = per_host.get(p.target, 0.0) + p.rate_bytes_s
        self.metrics.state.update(host_bandwidth=per_host)
