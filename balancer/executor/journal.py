"""Write-ahead journal of migrations: every state transition is saved before the step it announces.

States (``model.MoveState``) and the transitions allowed between them::

    queued ─► prechecking ─► copying_backing ─► migrating ─► verifying ─► succeeded
       │            │               │                │            │
       └────────────┴───────────────┴────────────────┴────────────┴──► failed | aborted | needs_attention
                    └──► refused

A skip (the precondition no longer holds: VM gone or already on the target) ends as ``aborted``
with the skip's reason as outcome, and a pre-check that refuses the move as ``refused``: nothing
was tried, so neither counts as a failed migration. Recovery may move any unfinished record to any
final state, and a ``needs_attention`` record to another final state once the hosts settle it.

Every write is a compare-and-set in the store, fenced by the leader lease (``Store.journal(fence)``):
it lands only while the record is still in the state this process last wrote and is owned by this
leader's term. Otherwise the store raises ``RecordChanged`` (an undrain withdrew a queued move, a newer
leader adopted the record) or ``LeaseLost``, and the caller stops: a final record is never rewritten
(``needs_attention`` aside, which a leader may settle later).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from balancer.errors import BalancerError, LibvirtErrorInfo
from balancer.executor.events import EventSink, StateChanged, discard
from balancer.model import MigrationRecord, Move, MoveState
from balancer.reasons import Reason


class JournalStore(Protocol):
    """The part of the store the executor needs: ``Store.journal(fence)`` (a FencedJournal)."""

    def now(self) -> float:
        """Epoch seconds on the store's clock: what records are stamped with."""
        ...

    def create_record(self, rec: MigrationRecord, drain_open: int | None = None) -> MigrationRecord:
        """Insert a new record, stamped with this leader's epoch; returns it as stored."""
        ...

    def update_record(self, rec: MigrationRecord, expect: MoveState) -> None:
        """Replace the record if it is still in state ``expect`` at this epoch (RecordChanged if not)."""
        ...

    def adopt_record(self, rec: MigrationRecord) -> MigrationRecord:
        """Take an unfinished record of an older term over; returns it stamped with this epoch."""
        ...

    def get_record(self, record_id: str) -> MigrationRecord: ...
    def unfinished_records(self) -> Sequence[MigrationRecord]: ...
    def records_needing_attention(self) -> Sequence[MigrationRecord]: ...


S = MoveState
_FINAL = (S.SUCCEEDED, S.FAILED, S.ABORTED, S.NEEDS_ATTENTION)
ALLOWED: dict[MoveState, tuple[MoveState, ...]] = {
    S.QUEUED: (S.PRECHECKING, S.FAILED, S.ABORTED, S.NEEDS_ATTENTION),
    S.PRECHECKING: (S.COPYING_BACKING, S.MIGRATING, *_FINAL, S.REFUSED),
    S.COPYING_BACKING: (S.MIGRATING, S.FAILED, S.ABORTED, S.NEEDS_ATTENTION),
    S.MIGRATING: (S.VERIFYING, *_FINAL),
    S.VERIFYING: _FINAL,
}


class TransitionError(BalancerError):
    """A journal transition the state machine does not allow (a bug in the executor)."""


def check_transition(old: MoveState, new: MoveState) -> None:
    if new not in ALLOWED.get(old, ()):
        raise TransitionError(f"journal: {old.value} → {new.value} is not an allowed transition")


def new_record(
    move: Move, now: float, bandwidth_mib_s: int, plan_id: int | None = None, record_id: str | None = None
) -> MigrationRecord:
    """The ``queued`` record of a move, with ``record_id`` or a fresh random id."""
    return MigrationRecord(
        id=record_id or uuid.uuid4().hex,
        vm=move.vm,
        source=move.source,
        target=move.target,
        reason=move.reason,
        state=MoveState.QUEUED,
        created_at=now,
        updated_at=now,
        plan_id=plan_id,
        bandwidth_mib_s=bandwidth_mib_s,
        copy_mode=move.cost.copy_mode,
        predicted_bytes=move.cost.total_bytes,
        detail=move.detail,
    )


class Journal:
    """Saves records through a JournalStore and emits a StateChanged event for each transition."""

    def __init__(
        self, store: JournalStore, sink: EventSink = discard, clock: Callable[[], float] | None = None
    ) -> None:
        self.store = store
        self.sink = sink
        self.clock = clock or store.now

    def create(self, rec: MigrationRecord, drain_open: int | None = None) -> MigrationRecord:
        """Journal a new move (``queued``); with ``drain_open``, only while that drain is open."""
        stored = self.store.create_record(rec, drain_open)
        self.sink(StateChanged(stored, None))
        return stored

    def adopt(self, rec: MigrationRecord) -> MigrationRecord:
        """Make an older term's unfinished record this leader's (RecordChanged if it moved meanwhile)."""
        return self.store.adopt_record(rec)

    def update(self, rec: MigrationRecord, **changes: Any) -> MigrationRecord:
        """Save figures without changing state (bytes copied, volumes created...)."""
        new = replace(rec, updated_at=self.clock(), **changes)
        self.store.update_record(new, rec.state)
        return new

    def move_to(
        self, rec: MigrationRecord, state: MoveState, *, recovering: bool = False, **changes: Any
    ) -> MigrationRecord:
        """Transition ``rec`` to ``state`` (validated), stamping times; saved before returning.

        ``recovering``: recovery may end any unfinished record in any final state, and settle a
        ``needs_attention`` record in another one.
        """
        if recovering and state.final and (not rec.state.final or rec.state == S.NEEDS_ATTENTION):
            pass
        else:
            check_transition(rec.state, state)
        now = self.clock()
        if state == MoveState.PRECHECKING and rec.started_at is None:
            changes.setdefault("started_at", now)
        if state.final:
            changes.setdefault("finished_at", now)
        new = replace(rec, state=state, updated_at=now, **changes)
        self.store.update_record(new, rec.state)
        self.sink(StateChanged(new, rec.state))
        return new

    def finish(
        self,
        rec: MigrationRecord,
        state: MoveState,
        outcome: Reason,
        error: LibvirtErrorInfo | None = None,
        detail: str = "",
        recovering: bool = False,
        **changes: Any,
    ) -> MigrationRecord:
        """A final transition carrying the outcome reason and libvirt's error triple, if any."""
        if error is not None:
            changes.update(error_code=error.code, error_domain=error.domain, error_message=error.message)
        if detail:
            changes["detail"] = detail
        return self.move_to(rec, state, recovering=recovering, outcome=outcome, **changes)
