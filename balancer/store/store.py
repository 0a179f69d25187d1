"""``Store``: the durable state's one entry point; every method is one transaction.

A method returns once its transaction has committed, so a drain request, a plan decision or a
journal entry is durable when the call returns. Failures raise ``StoreError`` (``NotFound`` for an
unknown id, ``Conflict`` for a request the stored state forbids) with the database's own text.
Time is always passed in (``now``, epoch seconds); the store has no clock of its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from balancer.model import MigrationRecord, MoveState, PastMove, Plan, TargetVolume
from balancer.store import audit, db, drains, journal, lease, plans, volumes
from balancer.store.migrations import LATEST, current_version, migrate
from balancer.store.records import (
    AuditEntry,
    Automation,
    DrainProgress,
    DrainRequest,
    DrainState,
    Lease,
    MoveStatus,
    PlanMoveRow,
    PlanRow,
    PlanStatus,
)

DEFAULT_LEASE = "balancer"


class Store:
    """Drain requests, plans, the migration journal, the audit log and the leader lease."""

    latest_schema_version = LATEST

    def __init__(self, database: db.Database) -> None:
        self._db = database

    @classmethod
    def open(cls, url: str, *, now: float | None = None, busy_timeout: float = 30.0) -> Store:
        """Connect to ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``) and migrate the schema.

        Creates a SQLite file's parent directory. Raises StoreError when the database is unreachable
        or its schema is newer than this balancer. ``now`` only stamps applied migrations.
        """
        database = db.Database(db.create(url, busy_timeout))
        try:
            with database.write(f"migrate {database.url}") as conn:
                migrate(conn, time.time() if now is None else now)
        except BaseException:
            database.close()
            raise
        return cls(database)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.dialect

    def schema_version(self) -> int:
        """The version the database is at (``latest_schema_version`` once opened)."""
        with self._db.read("schema_version") as conn:
            return current_version(conn)

    # ------------------------------------------------------------------ drains
    def create_drain(
        self, host: str, requested_by: str, now: float, *, deadline: float | None = None, note: str = ""
    ) -> tuple[DrainRequest, bool]:
        """Open a drain of ``host``: (the open drain, True if this call created it).

        Idempotent per host: while a drain is open, asking again returns it (and audits the ask).
        """
        with self._db.write(f"create_drain {host}") as conn:
            return drains.create(conn, host, requested_by, now, deadline, note)

    def get_drain(self, drain_id: int) -> DrainRequest:
        with self._db.read(f"get_drain {drain_id}") as conn:
            return drains.get(conn, drain_id)

    def drains(
        self, *, state: DrainState | None = None, host: str | None = None, limit: int | None = None
    ) -> tuple[DrainRequest, ...]:
        """Drain requests, newest first."""
        with self._db.read("drains") as conn:
            return drains.find(conn, state, host, limit)

    def update_drain_progress(self, drain_id: int, progress: DrainProgress, now: float) -> DrainRequest:
        """Record the service's latest progress of an open drain (Conflict once it is closed)."""
        with self._db.write(f"update_drain_progress {drain_id}") as conn:
            return drains.set_progress(conn, drain_id, progress, now)

    def close_drain(
        self,
        drain_id: int,
        state: DrainState,
        actor: str,
        now: float,
        *,
        progress: DrainProgress | None = None,
    ) -> DrainRequest:
        """Mark a drain done (the service) or cancelled (an operator); repeating it is a no-op."""
        if state == DrainState.OPEN:
            raise ValueError("close_drain takes DrainState.DONE, CANCELLED or RELEASED")
        with self._db.write(f"close_drain {drain_id}") as conn:
            return drains.close(conn, drain_id, state, actor, now, progress)

    # ------------------------------------------------------------------ plans
    def save_plan(
        self, plan: Plan, automation: Automation, now: float, *, status: PlanStatus = PlanStatus.PROPOSED
    ) -> PlanRow:
        """Store a plan and its moves (approved too when ``status`` is not proposed)."""
        with self._db.write("save_plan") as conn:
            return plans.get(conn, plans.save(conn, plan, automation, now, status))

    def get_plan(self, plan_id: int) -> PlanRow:
        with self._db.read(f"get_plan {plan_id}") as conn:
            return plans.get(conn, plan_id)

    def plans(self, *, status: PlanStatus | None = None, limit: int | None = None) -> tuple[PlanRow, ...]:
        """Stored plans, newest first."""
        with self._db.read("plans") as conn:
            return plans.find(conn, status, limit)

    def approve_plan(self, plan_id: int, actor: str, now: float) -> PlanRow:
        """Approve the plan and its undecided moves."""
        with self._db.write(f"approve_plan {plan_id}") as conn:
            return plans.decide(conn, plan_id, True, actor, now)

    def reject_plan(self, plan_id: int, actor: str, now: float) -> PlanRow:
        """Reject the plan and the moves that have not started."""
        with self._db.write(f"reject_plan {plan_id}") as conn:
            return plans.decide(conn, plan_id, False, actor, now)

    def approve_move(self, plan_id: int, index: int, actor: str, now: float) -> PlanMoveRow:
        with self._db.write(f"approve_move {plan_id}/{index}") as conn:
            return plans.decide_move(conn, plan_id, index, True, actor, now)

    def reject_move(self, plan_id: int, index: int, actor: str, now: float) -> PlanMoveRow:
        with self._db.write(f"reject_move {plan_id}/{index}") as conn:
            return plans.decide_move(conn, plan_id, index, False, actor, now)

    def set_plan_status(self, plan_id: int, status: PlanStatus, now: float) -> PlanRow:
        """The service's transitions: executing, done."""
        with self._db.write(f"set_plan_status {plan_id}") as conn:
            return plans.set_status(conn, plan_id, status, now)

    def set_move_status(
        self, plan_id: int, index: int, status: MoveStatus, *, migration_id: str | None = None
    ) -> PlanMoveRow:
        """The executor's transitions: started (with the journal id), succeeded, failed, skipped."""
        with self._db.write(f"set_move_status {plan_id}/{index}") as conn:
            return plans.set_move_status(conn, plan_id, index, status, migration_id)

    def mark_stale_plans_superseded(self, now: float, *, keep: int | None = None) -> tuple[int, ...]:
        """Supersede every proposed plan but ``keep`` (default: the newest); returns their ids.

        Approved plans are left alone: an operator's decision is not discarded silently.
        """
        with self._db.write("mark_stale_plans_superseded") as conn:
            return plans.supersede_stale(conn, now, keep)

    # ------------------------------------------------------------------ journal
    def save_record(self, rec: MigrationRecord) -> None:
        """Insert or replace the journal record ``rec.id``, committed before returning."""
        with self._db.write(f"save_record {rec.id}") as conn:
            journal.save(conn, rec)

    def get_record(self, record_id: str) -> MigrationRecord:
        with self._db.read(f"get_record {record_id}") as conn:
            return journal.get(conn, record_id)

    def unfinished_records(self) -> tuple[MigrationRecord, ...]:
        """Records not in a final state, oldest first (what recovery reconciles at startup)."""
        with self._db.read("unfinished_records") as conn:
            return journal.unfinished(conn)

    def records_needing_attention(self) -> tuple[MigrationRecord, ...]:
        """Records left in ``needs_attention``, oldest first (recovery looks at them again each start)."""
        with self._db.read("records_needing_attention") as conn:
            return journal.in_state(conn, MoveState.NEEDS_ATTENTION)

    def records(
        self, *, since: float | None = None, vm: str | None = None, limit: int | None = None
    ) -> tuple[MigrationRecord, ...]:
        """Records created at or after ``since``, newest first."""
        with self._db.read("records") as conn:
            return journal.find(conn, since, vm, limit)

    def recent_moves(self, since: float) -> tuple[PastMove, ...]:
        """Migrations finished at or after ``since``, oldest first, for cooldown and quarantine."""
        with self._db.read("recent_moves") as conn:
            return journal.recent_moves(conn, since)

    # ------------------------------------------------------------------ volumes moves created on targets
    def save_target_volume(self, vol: TargetVolume) -> None:
        """Insert or replace the row of (``vol.host``, ``vol.path``), committed before returning."""
        with self._db.write(f"save_target_volume {vol.host}:{vol.path}") as conn:
            volumes.save(conn, vol)

    def target_volume(self, host: str, path: str) -> TargetVolume | None:
        with self._db.read(f"target_volume {host}:{path}") as conn:
            return volumes.get(conn, host, path)

    def target_volumes(
        self, *, host: str | None = None, record_id: str | None = None, state: str | None = None
    ) -> tuple[TargetVolume, ...]:
        """Rows by host and path, optionally only one host's, one record's or one state's."""
        with self._db.read("target_volumes") as conn:
            return volumes.find(conn, host, record_id, state)

    def forget_target_volume(self, host: str, path: str, record_id: str) -> bool:
        """Drop the row once the volume is removed or handed over; only while ``record_id`` owns it."""
        with self._db.write(f"forget_target_volume {host}:{path}") as conn:
            return volumes.forget(conn, host, path, record_id)

    # ------------------------------------------------------------------ audit
    def audit(
        self, actor: str, action: str, subject: str, now: float, detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Record an operator action the store does not audit by itself."""
        with self._db.write(f"audit {action}") as conn:
            return audit.add(conn, actor, action, subject, now, detail)

    def audit_log(
        self,
        *,
        since: float | None = None,
        actor: str | None = None,
        subject: str | None = None,
        limit: int | None = None,
    ) -> tuple[AuditEntry, ...]:
        """Audit entries, newest first."""
        with self._db.read("audit_log") as conn:
            return audit.entries(conn, since, actor, subject, limit)

    # ------------------------------------------------------------------ leader lease
    def acquire_or_renew_lease(
        self, holder: str, now: float, ttl: float, *, name: str = DEFAULT_LEASE
    ) -> bool:
        """True when ``holder`` leads until ``now + ttl``: it held the lease, or it was free or expired."""
        if not (ttl > 0 and math.isfinite(ttl)):
            raise ValueError(f"lease ttl must be a positive number of seconds, not {ttl!r}")
        with self._db.write(f"acquire_or_renew_lease {name}") as conn:
            return lease.acquire_or_renew(conn, name, holder, now, ttl)

    def release_lease(self, holder: str, *, name: str = DEFAULT_LEASE) -> bool:
        """Give the lease up (on shutdown) so another instance need not wait for it to expire."""
        with self._db.write(f"release_lease {name}") as conn:
            return lease.release(conn, name, holder)

    def current_leader(self, now: float, *, name: str = DEFAULT_LEASE) -> Lease | None:
        """The unexpired lease at ``now``, or None when nobody leads."""
        with self._db.read(f"current_leader {name}") as conn:
            return lease.current(conn, name, now)
