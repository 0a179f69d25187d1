"""The planner's decisions in the log, one line each when they change, not every tick.

A move is logged (``move_planned``) the first tick a plan holds it; a skip (``plan_skip``) when its
reason or detail for that VM or host changes. A plan that says the same thing tick after tick writes
nothing more; what the current plan holds is always in the API and /metrics.
"""

from __future__ import annotations

import logging

from balancer.model import Plan

log = logging.getLogger("balancer.service")


class DecisionLog:
    """Remembers the last plan's moves and skips so only new decisions are logged."""

    def __init__(self) -> None:
        self._moves: set[tuple[str, str, str, str]] = set()
        self._skips: dict[tuple[str, str], tuple[str, str]] = {}

    def record(self, plan: Plan) -> None:
        moves = set()
        for m in plan.moves:
            key = (m.vm, m.source, m.target, m.reason.value)
            moves.add(key)
            if key not in self._moves:
                log.info(
                    "event=move_planned vm=%s source=%s target=%s reason=%s bytes=%d detail=%r",
                    m.vm,
                    m.source,
                    m.target,
                    m.reason.value,
                    m.cost.total_bytes,
                    m.detail,
                )
        skips: dict[tuple[str, str], tuple[str, str]] = {}
        for s in plan.skips:
            subject, why = (s.subject, s.name), (s.reason.value, s.detail)
            skips[subject] = why
            if self._skips.get(subject) != why:
                log.info("event=plan_skip subject=%s name=%s reason=%s detail=%r", s.subject, s.name, *why)
        self._moves, self._skips = moves, skips
