"""Executor events → metrics, one structured log line per decision, and efficacy checks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from balancer.executor.events import Event, Finished, Note, Outcome, Progress, StateChanged, Waiting
from balancer.metrics.export import Metrics
from balancer.model import Move
from balancer.service.efficacy import Efficacy

log = logging.getLogger("balancer.executor")


class ServiceSink:
    """The Runner's EventSink in the service. Called from worker threads; never blocks for long."""

    def __init__(
        self,
        metrics: Metrics,
        efficacy: Efficacy,
        moves: dict[str, Move],
        on_finished: Callable[[Outcome], None] = lambda _outcome: None,
    ) -> None:
        self.metrics = metrics
        self.efficacy = efficacy
        self.moves = moves  # journal id -> Move (shared with Service.live.moves)
        self.on_finished = on_finished
        self._rates: dict[str, tuple[str, str, float]] = {}  # record id -> (source, target, bytes/s)
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            with self._lock:
                self._rates[event.record_id] = (event.source, event.target, event.rate_bytes_s)
            self._export_bandwidth()
        elif isinstance(event, StateChanged):
            r = event.record
            log.info(
                "event=migration_state id=%s vm=%s source=%s target=%s state=%s previous=%s detail=%r",
                r.id,
                r.vm,
                r.source,
                r.target,
                r.state.value,
                event.previous.value if event.previous else None,
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
            self._finished(event)

    def _finished(self, event: Finished) -> None:
        out = event.outcome
        r = out.record
        with self._lock:
            self._rates.pop(r.id, None)
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
        move = self.moves.get(r.id)
        if out.ok and move is not None:
            self.efficacy.moved(move, r.finished_at or time.time())
        self.on_finished(out)

    def _export_bandwidth(self) -> None:
        with self._lock:
            per_host: dict[str, float] = {}
            for source, target, rate in self._rates.values():
                per_host[source] = per_host.get(source, 0.0) + rate
                per_host[target] = per_host.get(target, 0.0) + rate
        self.metrics.state.update(host_bandwidth=per_host)
