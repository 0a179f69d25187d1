"""``Store``: the durable state's one entry point; every method is one transaction.

A method returns once its transaction has committed, so a drain request, a plan decision or a
journal entry is durable when the call returns. Failures raise ``StoreError`` (``NotFound`` for an
unknown id, ``Conflict`` for a request the stored state forbids) with the database's own text.

Leader-only writes (journal transitions, the service's plan and drain bookkeeping) take a ``Fence``
and fail closed with ``LeaseLost`` unless its holder still holds the lease at its epoch, checked in
the same transaction (lease.py). Operators' requests (drains, undrains, approvals) need no fence: any
instance may accept them, and the leader acts on them.

Instants are passed in (``now``, epoch seconds): callers read ``Store.now()``, the store's clock
(clock.py), so a step of a host's wall clock moves nothing but log timestamps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, inspect

from balancer.errors import Conflict, ErrorCode, StoreError
from balancer.model import MigrationRecord, MoveState, PastMove, Plan, TargetVolume
from balancer.store import audit, db, drains, journal, lease, plans, volumes
from balancer.store.clock import StoreClock
from balancer.store.migrations import LATEST, current_version, migrate
from balancer.store.records import (
    AuditEntry,
    Automation,
    DrainProgress,
    DrainRequest,
    DrainState,
    Fence,
    Lease,
    LeaseGrant,
    MoveStatus,
    PlanMoveRow,
    PlanRow,
    PlanStatus,
)

DEFAULT_LEASE = "balancer"


class Store:
    """Drain requests, plans, the migration journal, the audit log and the leader lease."""

    latest_schema_version = LATEST

    def __init__(self, database: db.Database, lease_clock: lease.LocalClock = time.monotonic) -> None:
        self._db = database
        self._lease_clock = lease_clock
        self._clock = StoreClock()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        now: float | None = None,
        busy_timeout: float = 30.0,
        create: bool = True,
        lease_clock: lease.LocalClock = time.monotonic,
    ) -> Store:
        """Connect to ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``) and migrate the schema.

        With ``create`` (the service) a SQLite file and its directory are created and the schema is
        migrated; without it (the CLI's ``--local``) the store must already exist at the latest
        schema, and nothing is written. Raises StoreError when the database is unreachable, missing,
        or its schema is newer than this balancer. ``now`` only stamps applied migrations.
        ``lease_clock`` is SQLite's lease clock (the host's monotonic clock; tests inject one).
        """
        if not create:
            _must_exist(url)
        database = db.Database(db.create(url, busy_timeout))
        try:
            if create:
                with database.write(f"migrate {database.url}") as conn:
                    migrate(conn, time.time() if now is None else now)
            else:
                with database.read(f"schema of {database.url}") as conn:
                    _must_be_current(conn, database.url)
        except BaseException:
            database.close()
            raise
        store = cls(database, lease_clock)
        store._measure_clock()
        return store

    def now(self) -> float:
        """Epoch seconds on the store's clock (clock.py); what every instant the service writes uses."""
        return self._clock.now()

    def _measure_clock(self) -> None:
        sent = time.monotonic()
        with self._db.read("store clock") as conn:
            server = lease.store_now(conn)
        if server is not None:
            self._clock.observe(server, sent, time.monotonic())

    @contextmanager
    def _leader_write(self, what: str, fence: Fence) -> Iterator[Connection]:
        """A write transaction that first proves ``fence`` still holds the lease (LeaseLost if not)."""
        with self._db.write(what) as conn:
            lease.check(conn, fence, self._lease_clock)
            yield conn

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

    def update_drain_progress(
        self, drain_id: int, progress: DrainProgress, now: float, *, fence: Fence
    ) -> DrainRequest:
        """The leader records its latest progress of an open drain (Conflict once it is closed)."""
        with self._leader_write(f"update_drain_progress {drain_id}", fence) as conn:
            return drains.set_progress(conn, drain_id, progress, now)

    def finish_drain(
        self, drain_id: int, now: float, *, progress: DrainProgress | None = None, fence: Fence
    ) -> DrainRequest:
        """The leader found the host empty: the drain is done (the host stays in maintenance)."""
        with self._leader_write(f"finish_drain {drain_id}", fence) as conn:
            return drains.close(conn, drain_id, DrainState.DONE, "balancer", now, progress)

    def close_drain(self, drain_id: int, state: DrainState, actor: str, now: float) -> DrainRequest:
        """An operator's undrain: cancel an open drain, or release a done one (its host back in service).

        Cancelling withdraws, in the same transaction, every move of the drain that has not started:
        queued journal records end ``aborted`` (``drain_cancelled``) and stored drain moves never handed
        to the executor become ``withdrawn``; a leader never starts them after this returns.
        Repeating a close is a no-op.
        """
        if state not in (DrainState.CANCELLED, DrainState.RELEASED):
            raise ValueError(
                "close_drain takes DrainState.CANCELLED or RELEASED (the leader finishes drains)"
            )
        with self._db.write(f"close_drain {drain_id}") as conn:
            before = drains.get(conn, drain_id, for_update=True)
            closed = drains.close(conn, drain_id, state, actor, now, None)
            if state == DrainState.CANCELLED and before.state == DrainState.OPEN:
                journal.withdraw_queued_of_drain(conn, drain_id, actor, now)
                plans.withdraw_drain_moves(conn, before.host, actor, now)
            return closed

    # ------------------------------------------------------------------ plans
    def save_plan(
        self,
        plan: Plan,
        automation: Automation,
        now: float,
        *,
        fence: Fence,
        status: PlanStatus = PlanStatus.PROPOSED,
        expires_at: float | None = None,
        decided_by: str | None = None,
    ) -> PlanRow:
        """The leader stores a plan and its moves (approved too when ``status`` is not proposed)."""
        with self._leader_write("save_plan", fence) as conn:
            plan_id = plans.save(conn, plan, automation, now, status, expires_at, decided_by)
            return plans.get(conn, plan_id)

    def refresh_proposal(self, plan_id: int, now: float, expires_at: float, *, fence: Fence) -> None:
        """The leader proposed the same plan again: it stays approvable until ``expires_at``."""
        with self._leader_write(f"refresh_proposal {plan_id}", fence) as conn:
            plans.refresh(conn, plan_id, now, expires_at)

    def expire_proposals(self, now: float, *, fence: Fence) -> tuple[int, ...]:
        """The leader marks proposals past their time ``expired``; their ids."""
        with self._leader_write("expire_proposals", fence) as conn:
            return plans.expire(conn, now)

    def get_plan(self, plan_id: int) -> PlanRow:
        with self._db.read(f"get_plan {plan_id}") as conn:
            return plans.get(conn, plan_id)

    def plans(self, *, status: PlanStatus | None = None, limit: int | None = None) -> tuple[PlanRow, ...]:
        """Stored plans, newest first."""
        with self._db.read("plans") as conn:
            return plans.find(conn, status, limit)

    def plans_with_approved_moves(self) -> tuple[PlanRow, ...]:
        """Approved or proposed plans holding approved moves not started yet, oldest first."""
        with self._db.read("plans_with_approved_moves") as conn:
            return plans.with_approved_moves(conn)

    def follow_outcome(self, migration_id: str, status: MoveStatus, *, fence: Fence) -> int:
        """The stored plan move that started journal record ``migration_id`` takes its final status."""
        with self._leader_write(f"follow_outcome {migration_id}", fence) as conn:
            return plans.follow(conn, migration_id, status)

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

    def set_plan_status(self, plan_id: int, status: PlanStatus, now: float, *, fence: Fence) -> PlanRow:
        """The leader's transitions: executing, done."""
        with self._leader_write(f"set_plan_status {plan_id}", fence) as conn:
            return plans.set_status(conn, plan_id, status, now)

    def set_move_status(
        self,
        plan_id: int,
        index: int,
        status: MoveStatus,
        *,
        fence: Fence,
        migration_id: str | None = None,
    ) -> PlanMoveRow:
        """The leader's transitions: started (with the journal id), succeeded, failed, skipped."""
        with self._leader_write(f"set_move_status {plan_id}/{index}", fence) as conn:
            return plans.set_move_status(conn, plan_id, index, status, migration_id)

    def mark_stale_plans_superseded(
        self, now: float, *, fence: Fence, keep: int | None = None
    ) -> tuple[int, ...]:
        """Supersede every proposed plan but ``keep`` (default: the newest); returns their ids.

        Approved plans are left alone: an operator's decision is not discarded silently.
        """
        with self._leader_write("mark_stale_plans_superseded", fence) as conn:
            return plans.supersede_stale(conn, now, keep)

    # ------------------------------------------------------------------ journal
    def save_record(self, rec: MigrationRecord) -> None:
        """Insert or replace the journal record ``rec.id`` as it is, unfenced: imports and test
        fixtures only. The executor writes through ``journal(fence)``, the only path the service uses."""
        with self._db.write(f"save_record {rec.id}") as conn:
            journal.save(conn, rec)

    def journal(self, fence: Fence) -> FencedJournal:
        """The journal as the leader at ``fence`` writes it (the executor's JournalStore)."""
        return FencedJournal(self, fence)

    def create_record(self, rec: MigrationRecord, *, fence: Fence, drain_open: int | None = None) -> None:
        """The leader journals a new move, stamped with its epoch; with ``drain_open`` only while that
        drain is still open (Conflict once an undrain closed it: the move is never queued)."""
        if rec.epoch != fence.epoch:
            raise ValueError(f"record {rec.id} is for epoch {rec.epoch}, the fence is epoch {fence.epoch}")
        with self._leader_write(f"create_record {rec.id}", fence) as conn:
            if drain_open is not None:
                drain = drains.get(conn, drain_open)
                if drain.state != DrainState.OPEN:
                    raise Conflict(
                        f"drain {drain_open} of {drain.host} is {drain.state.value}; not queueing",
                        ErrorCode.DRAIN_CLOSED,
                    )
            journal.insert(conn, rec)

    def update_record(
        self, rec: MigrationRecord, *, expect: MoveState, fence: Fence, from_epoch: int | None = None
    ) -> None:
        """The leader replaces record ``rec.id`` if it is still in state ``expect`` and owned by
        ``from_epoch`` (default ``rec.epoch``): a compare-and-set, so a final record is never
        rewritten and a record an undrain withdrew or a newer leader adopted is left alone
        (RecordChanged)."""
        if rec.epoch != fence.epoch:
            raise ValueError(f"record {rec.id} is for epoch {rec.epoch}, the fence is epoch {fence.epoch}")
        with self._leader_write(f"update_record {rec.id}", fence) as conn:
            journal.transition(conn, rec, expect, rec.epoch if from_epoch is None else from_epoch)

    def get_record(self, record_id: str) -> MigrationRecord:
        with self._db.read(f"get_record {record_id}") as conn:
            return journal.get(conn, record_id)

    def resolve_record(self, id_or_prefix: str) -> MigrationRecord:
        """The record with this id, or the only one whose id starts with it (journal.resolve)."""
        with self._db.read(f"resolve_record {id_or_prefix}") as conn:
            return journal.resolve(conn, id_or_prefix)

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
    def save_target_volume(self, vol: TargetVolume, *, fence: Fence) -> None:
        """The leader records a target volume (insert or replace its row), committed before returning."""
        with self._leader_write(f"save_target_volume {vol.host}:{vol.path}", fence) as conn:
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

    def forget_target_volume(self, host: str, path: str, record_id: str, *, fence: Fence) -> bool:
        """The leader drops the row once the volume is removed or handed over; only while
        ``record_id`` owns it."""
        with self._leader_write(f"forget_target_volume {host}:{path}", fence) as conn:
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
    def acquire_lease(self, holder: str, ttl: float, *, name: str = DEFAULT_LEASE) -> LeaseGrant | None:
        """Take the lease if it is free, expired by the store's clock, or ours, in a new term (epoch + 1)."""
        _check_ttl(ttl)
        return self._lease_call(
            f"acquire_lease {name}", lambda c: lease.acquire(c, name, holder, ttl, self._lease_clock)
        )

    def renew_lease(
        self, holder: str, epoch: int, ttl: float, *, name: str = DEFAULT_LEASE
    ) -> LeaseGrant | None:
        """Extend our lease at ``epoch`` before it expires; None once it expired or another holds it."""
        _check_ttl(ttl)
        return self._lease_call(
            f"renew_lease {name}", lambda c: lease.renew(c, name, holder, epoch, ttl, self._lease_clock)
        )

    def _lease_call(self, what: str, call: Any) -> LeaseGrant | None:
        sent = time.monotonic()
        with self._db.write(what) as conn:
            grant: LeaseGrant | None = call(conn)
        if grant is not None and self.dialect == "postgresql":
            self._clock.observe(grant.store_now, sent, time.monotonic())
        return grant

    def release_lease(self, holder: str, epoch: int | None = None, *, name: str = DEFAULT_LEASE) -> bool:
        """Give the lease up (on shutdown) so another instance need not wait for it to expire."""
        with self._db.write(f"release_lease {name}") as conn:
            return lease.release(conn, name, holder, epoch)

    def current_leader(self, *, name: str = DEFAULT_LEASE) -> Lease | None:
        """The unexpired lease now (by the store's clock), or None when nobody leads."""
        with self._db.read(f"current_leader {name}") as conn:
            return lease.current(conn, name, self._lease_clock)


class FencedJournal:
    """The executor's JournalStore: journal writes of the leader holding ``fence``, nothing else."""

    def __init__(self, store: Store, fence: Fence) -> None:
        self.store = store
        self.fence = fence

    def now(self) -> float:
        return self.store.now()

    def create_record(self, rec: MigrationRecord, drain_open: int | None = None) -> MigrationRecord:
        stamped = replace(rec, epoch=self.fence.epoch)
        self.store.create_record(stamped, fence=self.fence, drain_open=drain_open)
        return stamped

    def update_record(self, rec: MigrationRecord, expect: MoveState) -> None:
        self.store.update_record(rec, expect=expect, fence=self.fence)

    def adopt_record(self, rec: MigrationRecord) -> MigrationRecord:
        """Take over an unfinished record of an older term: it is this leader's from now on."""
        adopted = replace(rec, epoch=self.fence.epoch)
        self.store.update_record(adopted, expect=rec.state, fence=self.fence, from_epoch=rec.epoch)
        return adopted

    def get_record(self, record_id: str) -> MigrationRecord:
        return self.store.get_record(record_id)

    def unfinished_records(self) -> Sequence[MigrationRecord]:
        return self.store.unfinished_records()

    def records_needing_attention(self) -> Sequence[MigrationRecord]:
        return self.store.records_needing_attention()

    # the executor's VolumeLedger (executor/artifacts.py): its writes are the leader's too
    def save_target_volume(self, vol: TargetVolume) -> None:
        self.store.save_target_volume(vol, fence=self.fence)

    def target_volume(self, host: str, path: str) -> TargetVolume | None:
        return self.store.target_volume(host, path)

    def target_volumes(
        self, *, host: str | None = None, record_id: str | None = None, state: str | None = None
    ) -> tuple[TargetVolume, ...]:
        return self.store.target_volumes(host=host, record_id=record_id, state=state)

    def forget_target_volume(self, host: str, path: str, record_id: str) -> bool:
        return self.store.forget_target_volume(host, path, record_id, fence=self.fence)


def _check_ttl(ttl: float) -> None:
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"lease ttl must be a positive number of seconds, not {ttl!r}")


def _must_exist(url: str) -> None:
    parsed = db.parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not path.is_file():
            raise StoreError(
                f"no store at {path} (store.url): nothing has run there yet; start `balancer run` with "
                "this config to create it, or fix store.url"
            )
        with path.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00":  # opening it would make it one (WAL mode)
                raise StoreError(f"{path} (store.url) is not a SQLite database, so no balancer schema")


def _must_be_current(conn: Connection, where: str) -> None:
    have = current_version(conn) if inspect(conn).has_table("schema_version") else 0
    if have != LATEST:
        what = "no balancer schema" if have == 0 else f"schema version {have}, not {LATEST}"
        raise StoreError(
            f"the store {where} has {what}; start `balancer run` (this version) once to create or upgrade it"
        )
