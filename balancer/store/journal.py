"""The migration journal: one row per MigrationRecord (columns named after its fields), upserted by id.

Cooldown and quarantine are not stored separately: ``recent_moves`` derives them from finished records.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import Connection, RowMapping, func, or_, select, update

from balancer.errors import AmbiguousId, ErrorCode, NotFound, RecordChanged, StoreError
from balancer.model import MigrationRecord, MoveState, PastMove
from balancer.reasons import Reason
from balancer.store.db import insert_for
from balancer.store.records import decode
from balancer.store.tables import migrations

_FIELDS = tuple(f.name for f in fields(MigrationRecord))
AMBIGUOUS_SHOWN = 10  # candidates an ambiguous prefix names
_FINAL = tuple(s.value for s in MoveState if s.final)
_SUCCEEDED = MoveState.SUCCEEDED.value
_REFUSED = MoveState.REFUSED.value
_TUPLES = ("created_volumes", "removed_volumes")
_NOT_TRIED = tuple(
    r.value
    for r in (
        Reason.SHUTDOWN,
        Reason.VM_NOT_FOUND,
        Reason.VM_NOT_ON_SOURCE,
        Reason.VM_ALREADY_ON_TARGET,
        Reason.NOT_RUNNING,
        Reason.DRAIN_CANCELLED,
        Reason.LEADER_CHANGED,
        Reason.VM_BUSY,
    )
)
_QUEUED = MoveState.QUEUED.value


def save(conn: Connection, rec: MigrationRecord) -> None:
    """Insert or replace a record as it is, unconditionally (imports and test fixtures only: the
    executor writes through ``insert``/``transition``, fenced by the leader lease)."""
    stmt = insert_for(conn, migrations).values(**_row(rec))
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[migrations.c.id],
            set_={k: stmt.excluded[k] for k in _FIELDS if k != "id"},
        )
    )


def _row(rec: MigrationRecord) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(rec, name) for name in _FIELDS}
    for key in _TUPLES:
        row[key] = list(row[key])
    for key in ("reason", "state", "outcome"):
        row[key] = None if row[key] is None else str(row[key])
    return row


def insert(conn: Connection, rec: MigrationRecord) -> None:
    """A new record (its id must be new): the first journal write of a move."""
    conn.execute(migrations.insert().values(**_row(rec)))


_TERMINAL = (MoveState.SUCCEEDED, MoveState.FAILED, MoveState.ABORTED, MoveState.REFUSED)


def transition(conn: Connection, rec: MigrationRecord, expect: MoveState, owner: int) -> None:
    """Replace record ``rec.id`` only while it is still in state ``expect`` and owned by epoch ``owner``
    (``rec.epoch`` itself, or an older term when a new leader adopts the record).

    RecordChanged (with the stored record) when it is not: an undrain withdrew it, a newer leader
    adopted it, or it already ended. A final record is therefore never rewritten.
    """
    if expect in _TERMINAL:
        # succeeded, failed and aborted are the end: nothing rewrites them (needs_attention is final
        # for the executor but stays open to a leader re-examining it)
        raise RecordChanged(f"migration {rec.id} is {expect.value}: a final record is never rewritten")
    values = {k: v for k, v in _row(rec).items() if k != "id"}
    done = conn.execute(
        update(migrations)
        .where(migrations.c.id == rec.id, migrations.c.state == expect.value, migrations.c.epoch == owner)
        .values(**values)
    )
    if done.rowcount == 1:
        return
    current = conn.execute(select(migrations).where(migrations.c.id == rec.id)).mappings().first()
    now = _record(current) if current is not None else None
    seen = "absent" if now is None else f"{now.state.value} at epoch {now.epoch}"
    raise RecordChanged(f"migration {rec.id}: expected {expect.value} at epoch {owner}, found {seen}", now)


def withdraw_queued_of_drain(conn: Connection, drain_id: int, actor: str, now: float) -> tuple[str, ...]:
    """End every still-queued move of drain ``drain_id`` as aborted (``drain_cancelled``); their ids.

    Runs in the undrain's transaction: a leader that has not admitted such a move yet finds it
    withdrawn (its queued → prechecking transition fails) and never starts it.
    """
    stmt = (
        update(migrations)
        .where(migrations.c.drain_id == drain_id, migrations.c.state == _QUEUED)
        .values(
            state=MoveState.ABORTED.value,
            outcome=Reason.DRAIN_CANCELLED.value,
            finished_at=now,
            updated_at=now,
            detail=f"withdrawn before it started: drain {drain_id} cancelled by {actor}",
        )
        .returning(migrations.c.id)
    )
    return tuple(sorted(conn.execute(stmt).scalars()))


def get(conn: Connection, record_id: str) -> MigrationRecord:
    row = conn.execute(select(migrations).where(migrations.c.id == record_id)).mappings().first()
    if row is None:
        raise NotFound(f"migration {record_id!r} is not in the journal", ErrorCode.MIGRATION_NOT_FOUND)
    return _record(row)


def resolve(conn: Connection, id_or_prefix: str) -> MigrationRecord:
    """The record whose id is ``id_or_prefix``, else the only one whose id starts with it.

    Operators read ids shortened (``c30fe19``) and type them back: a unique prefix is as good as the
    id, as in git. No match is NotFound (``migration_not_found``); several are AmbiguousId
    (``ambiguous_id``) naming up to ``AMBIGUOUS_SHOWN`` of them, so nothing acts on a guess.
    """
    row = conn.execute(select(migrations).where(migrations.c.id == id_or_prefix)).mappings().first()
    if row is not None:
        return _record(row)
    q = (
        select(migrations)
        .where(migrations.c.id.startswith(id_or_prefix, autoescape=True))
        .order_by(migrations.c.id)
        .limit(AMBIGUOUS_SHOWN + 1)
    )
    rows = list(conn.execute(q).mappings())
    if not rows:
        raise NotFound(
            f"migration {id_or_prefix!r} is not in the journal (no id is or starts with it)",
            ErrorCode.MIGRATION_NOT_FOUND,
        )
    if len(rows) > 1:
        shown = [str(r["id"]) for r in rows[:AMBIGUOUS_SHOWN]]
        raise AmbiguousId("migration", id_or_prefix, shown, more=len(rows) > AMBIGUOUS_SHOWN)
    return _record(rows[0])


def unfinished(conn: Connection) -> tuple[MigrationRecord, ...]:
    """Records whose state is not final, oldest first: what recovery must reconcile."""
    q = select(migrations).where(migrations.c.state.not_in(_FINAL)).order_by(migrations.c.created_at)
    return tuple(_record(r) for r in conn.execute(q).mappings())


def in_state(conn: Connection, state: MoveState) -> tuple[MigrationRecord, ...]:
    """Records in ``state``, oldest first."""
    q = select(migrations).where(migrations.c.state == state.value).order_by(migrations.c.created_at)
    return tuple(_record(r) for r in conn.execute(q).mappings())


def find(
    conn: Connection, since: float | None, vm: str | None, limit: int | None
) -> tuple[MigrationRecord, ...]:
    """Records created at or after ``since``, newest first."""
    q = select(migrations).order_by(migrations.c.created_at.desc(), migrations.c.id)
    if since is not None:
        q = q.where(migrations.c.created_at >= since)
    if vm is not None:
        q = q.where(migrations.c.vm == vm)
    if limit is not None:
        q = q.limit(limit)
    return tuple(_record(r) for r in conn.execute(q).mappings())


def recent_moves(conn: Connection, since: float) -> tuple[PastMove, ...]:
    """Finished migrations at or after ``since``, oldest first; only ``succeeded`` counts as a success.

    failed, aborted and needs_attention all become ``succeeded=False`` (quarantine: the VM's state
    after a migration that ended badly is not to be trusted by the planner). A move a pre-check
    refused (state ``refused``) comes with ``refused=True``: nothing was tried, so no quarantine,
    but the planner keeps the VM off that target for a while. Moves that were never tried for
    other reasons are left out: stopped by a shutdown before they started, or skipped because the
    VM was already elsewhere or gone (``_NOT_TRIED``); they say nothing about the VM.
    """
    finished = func.coalesce(migrations.c.finished_at, migrations.c.updated_at)
    q = (
        select(migrations.c.vm, migrations.c.source, migrations.c.target, migrations.c.state, finished)
        .where(migrations.c.state.in_(_FINAL), finished >= since)
        .where(or_(migrations.c.outcome.is_(None), migrations.c.outcome.not_in(_NOT_TRIED)))
        .order_by(finished, migrations.c.id)
    )
    return tuple(
        PastMove(
            vm=vm,
            source=src,
            target=dst,
            finished_at=at,
            succeeded=state == _SUCCEEDED,
            refused=state == _REFUSED,
        )
        for vm, src, dst, state, at in conn.execute(q)
    )


def _record(r: RowMapping) -> MigrationRecord:
    values = {name: r[name] for name in _FIELDS}
    values["reason"] = decode(Reason, r["reason"], "migrations.reason")
    values["state"] = decode(MoveState, r["state"], "migrations.state")
    values["outcome"] = None if r["outcome"] is None else decode(Reason, r["outcome"], "migrations.outcome")
    for key in _TUPLES:
        values[key] = tuple(r[key])
    if values["copy_mode"] not in (None, "incremental", "full"):
        raise StoreError(f"migrations.copy_mode: stored value {values['copy_mode']!r} is not known")
    return MigrationRecord(**values)
