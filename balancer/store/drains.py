"""Drain requests: at most one open per host (a partial unique index); every change audited with it."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, select, text, update

from balancer.errors import Conflict, ErrorCode, NotFound, StoreError
from balancer.store import audit
from balancer.store.db import insert_for
from balancer.store.records import DrainProgress, DrainRequest, DrainState, decode, progress_from_json
from balancer.store.records import progress_to_json as _progress_json
from balancer.store.tables import drains

_OPEN = DrainState.OPEN.value


def create(
    conn: Connection,
    host: str,
    requested_by: str,
    now: float,
    deadline: float | None,
    note: str,
) -> tuple[DrainRequest, bool]:
    """Insert an open drain for ``host`` unless one is open already; (the open drain, whether it is new).

    ON CONFLICT on the partial index makes a concurrent second request wait for the first to commit
    and then return its row, on PostgreSQL as on SQLite.
    """
    stmt = (
        insert_for(conn, drains)
        .values(
            host=host,
            state=_OPEN,
            requested_by=requested_by,
            created_at=now,
            updated_at=now,
            deadline=deadline,
            note=note,
        )
        .on_conflict_do_nothing(index_elements=[drains.c.host], index_where=text("state = 'open'"))
        .returning(drains.c.id)  # a returned row means this statement inserted it
    )
    open_drain = select(drains).where(drains.c.host == host, drains.c.state == _OPEN)
    # READ COMMITTED takes a new snapshot per statement, so retrying in this transaction sees the other's
    # commit; a retry is needed only if the drain we collided with was closed between our two statements.
    for _attempt in range(3):
        created = conn.execute(stmt).first() is not None
        row = conn.execute(open_drain).mappings().first()
        if row is not None:
            break
    else:
        raise StoreError(f"create_drain: the open drain of {host!r} kept changing; try again")
    drain = _drain(row)
    detail = {"host": host, "deadline": deadline, "note": note, "existing": not created}
    audit.add(conn, requested_by, "drain.create", f"drain/{drain.id}", now, detail)
    return drain, created


def get(conn: Connection, drain_id: int, for_update: bool = False) -> DrainRequest:
    q = select(drains).where(drains.c.id == drain_id)
    row = conn.execute(q.with_for_update() if for_update else q).mappings().first()
    if row is None:
        raise NotFound(f"drain {drain_id} does not exist", ErrorCode.DRAIN_NOT_FOUND)
    return _drain(row)


def find(
    conn: Connection, state: DrainState | None, host: str | None, limit: int | None
) -> tuple[DrainRequest, ...]:
    """Newest first."""
    q = select(drains).order_by(drains.c.created_at.desc(), drains.c.id.desc())
    if state is not None:
        q = q.where(drains.c.state == state.value)
    if host is not None:
        q = q.where(drains.c.host == host)
    if limit is not None:
        q = q.limit(limit)
    return tuple(_drain(r) for r in conn.execute(q).mappings())


def set_progress(conn: Connection, drain_id: int, progress: DrainProgress, now: float) -> DrainRequest:
    drain = get(conn, drain_id, for_update=True)
    if drain.state != DrainState.OPEN:
        raise Conflict(
            f"drain {drain_id} is {drain.state.value}; progress is kept only for open drains",
            ErrorCode.DRAIN_CLOSED,
        )
    conn.execute(
        update(drains)
        .where(drains.c.id == drain_id)
        .values(progress=_progress_json(progress), updated_at=now)
    )
    return get(conn, drain_id)


def close(
    conn: Connection,
    drain_id: int,
    state: DrainState,
    actor: str,
    now: float,
    progress: DrainProgress | None,
) -> DrainRequest:
    """Mark a drain done or cancelled, or a done drain released (its host back in service);
    closing it again in the same way returns it unchanged."""
    drain = get(conn, drain_id, for_update=True)
    if drain.state == state:
        return drain
    released = drain.state == DrainState.DONE and state == DrainState.RELEASED
    if drain.state != DrainState.OPEN and not released:
        raise Conflict(f"drain {drain_id} is already {drain.state.value}", ErrorCode.DRAIN_CLOSED)
    values: dict[str, object] = {
        "state": state.value,
        "closed_at": now,
        "closed_by": actor,
        "updated_at": now,
    }
    if progress is not None:
        values["progress"] = _progress_json(progress)
    conn.execute(update(drains).where(drains.c.id == drain_id).values(**values))
    action = {DrainState.CANCELLED: "drain.cancel", DrainState.RELEASED: "drain.release"}.get(
        state, "drain.done"
    )
    audit.add(conn, actor, action, f"drain/{drain_id}", now, {"host": drain.host})
    return get(conn, drain_id)


def _drain(r: RowMapping) -> DrainRequest:
    return DrainRequest(
        id=r["id"],
        host=r["host"],
        state=decode(DrainState, r["state"], "drains.state"),
        requested_by=r["requested_by"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        deadline=r["deadline"],
        closed_at=r["closed_at"],
        closed_by=r["closed_by"],
        note=r["note"],
        progress=None if r["progress"] is None else progress_from_json(r["progress"]),
    )
