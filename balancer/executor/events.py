"""What the executor reports while it works: progress events and the final Outcome of each move.

An :data:`EventSink` is any callable taking an :data:`Event`; the CLI draws its progress line from
it and the service feeds its metrics. Sinks are called from worker threads and must not block.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from balancer.errors import LibvirtErrorInfo
from balancer.model import MigrationRecord, MoveState
from balancer.reasons import Reason


class OutcomeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    SKIPPED = "skipped"  # a precondition no longer held (VM gone, already on the target): nothing tried
    REFUSED = "refused"  # a pre-check refused the move (no memory or disk, rule...): nothing tried
    NEEDS_ATTENTION = "needs_attention"


@dataclass(frozen=True)
class Outcome:
    """How one move ended; ``record`` is its final journal entry."""

    status: OutcomeStatus
    reason: Reason
    record: MigrationRecord
    error: LibvirtErrorInfo | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OutcomeStatus.SUCCEEDED


@dataclass(frozen=True)
class Progress:
    """A poll of a running move; bytes and bytes/s. ``phase``: copying_backing, disk, memory."""

    record_id: str
    vm: str
    source: str
    target: str
    phase: str
    bytes_copied: int
    bytes_remaining: int
    rate_bytes_s: float
    elapsed_s: float
    memory_iteration: int = 0


@dataclass(frozen=True)
class StateChanged:
    """A journal transition, written to the store just before this event is emitted."""

    record: MigrationRecord
    previous: MoveState | None


@dataclass(frozen=True)
class Waiting:
    """A queued move that admission held back in this pass, and why."""

    record_id: str
    vm: str
    reason: Reason
    detail: str


@dataclass(frozen=True)
class Finished:
    outcome: Outcome


@dataclass(frozen=True)
class Note:
    """A decision taken during a migration (downtime raised, abort asked, cleanup skipped...)."""

    record_id: str
    vm: str
    reason: Reason | None
    message: str
    action: str | None = None  # convergence action taken: raise_downtime, auto_converge, post_copy, abort


Event = Progress | StateChanged | Waiting | Finished | Note
EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An EventSink that drops everything."""


class QueueSink:
    """An EventSink that puts events on a ``queue.Queue`` for a consumer thread."""

    def __init__(self, maxsize: int = 0) -> None:
        self.queue: queue.Queue[Event] = queue.Queue(maxsize)

    def __call__(self, event: Event) -> None:
        with contextlib.suppress(queue.Full):  # a slow consumer loses events, never blocks a migration
            self.queue.put_nowait(event)
