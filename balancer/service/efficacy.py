"""Did a move help? Some minutes after a move succeeded, compare its hosts' real load with the prediction.

For each finished move we keep the planner's predicted normalised load of its source and target
(``Move.source_load.after`` / ``target_load.after``). When ``delay`` seconds have passed, the
observed load (demand ÷ capacity from that tick's Snapshot) is compared with it: the absolute error
per host and resource feeds ``balancer_move_prediction_error_ratio``, and the move counts as having
helped when the source's load is below what it was before the move (``balancer_moves_evaluated_total
{helped}``). Pending checks live in memory: a restart forgets them (it loses a measurement, nothing else).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from balancer.metrics.export import Metrics
from balancer.model import Move, Snapshot

log = logging.getLogger("balancer.efficacy")


@dataclass(frozen=True)
class _Pending:
    move: Move
    due: float


class Efficacy:
    """Queue of finished moves waiting to be judged; thread-safe (executor threads add, the tick checks)."""

    def __init__(self, metrics: Metrics, delay_seconds: float) -> None:
        self.metrics = metrics
        self.delay = delay_seconds
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()

    def moved(self, move: Move, finished_at: float) -> None:
        if move.source_load is None or move.target_load is None:
            return
        with self._lock:
            self._pending.append(_Pending(move, finished_at + self.delay))

    def check(self, snap: Snapshot, now: float) -> int:
        """Judge every move now due; returns how many were judged."""
        with self._lock:
            due = [p for p in self._pending if p.due <= now]
            self._pending = [p for p in self._pending if p.due > now]
        for p in due:
            self._judge(p.move, snap)
        return len(due)

    def _judge(self, move: Move, snap: Snapshot) -> None:
        assert move.source_load is not None and move.target_load is not None
        observed = snap.load_ratios()
        errors = []
        for host, change in ((move.source, move.source_load), (move.target, move.target_load)):
            seen = observed.get(host)
            if seen is None:
                continue
            for res, predicted in change.after.items():
                if res in seen:
                    err = abs(seen[res] - predicted)
                    errors.append(err)
                    self.metrics.efficacy_error.observe(err)
        src_now = observed.get(move.source, {})
        helped = any(src_now.get(r, v) < v for r, v in move.source_load.before.items())
        self.metrics.moves_evaluated.labels("true" if helped else "false").inc()
        log.info(
            "event=move_evaluated vm=%s source=%s target=%s helped=%s max_error=%.3f",
            move.vm,
            move.source,
            move.target,
            helped,
            max(errors, default=0.0),
        )
