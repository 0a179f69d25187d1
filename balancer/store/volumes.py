"""Volumes moves created on target hosts: one row per (host, path) until removed or handed over.

The executor writes a row *before* it creates a volume (``provisional``), so a volume of an
interrupted move is always known to be ours and unproven, however the move ended; a backing file
becomes ``verified`` only after its content was proven complete and equal to the source's.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, select

from balancer.errors import StoreError
from balancer.model import TargetVolume
from balancer.store.db import insert_for
from balancer.store.tables import target_volumes

_FIELDS = tuple(f.name for f in fields(TargetVolume))
_KINDS = ("backing", "disk")
_STATES = ("provisional", "verified")


def save(conn: Connection, vol: TargetVolume) -> None:
    row: dict[str, Any] = {name: getattr(vol, name) for name in _FIELDS}
    stmt = insert_for(conn, target_volumes).values(**row)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[target_volumes.c.host, target_volumes.c.path],
            set_={k: stmt.excluded[k] for k in _FIELDS if k not in ("host", "path")},
        )
    )


def get(conn: Connection, host: str, path: str) -> TargetVolume | None:
    q = select(target_volumes).where(target_volumes.c.host == host, target_volumes.c.path == path)
    row = conn.execute(q).mappings().first()
    return None if row is None else _volume(row)


def find(
    conn: Connection, host: str | None, record_id: str | None, state: str | None
) -> tuple[TargetVolume, ...]:
    q = select(target_volumes).order_by(target_volumes.c.host, target_volumes.c.path)
    if host is not None:
        q = q.where(target_volumes.c.host == host)
    if record_id is not None:
        q = q.where(target_volumes.c.record_id == record_id)
    if state is not None:
        q = q.where(target_volumes.c.state == state)
    return tuple(_volume(r) for r in conn.execute(q).mappings())


def forget(conn: Connection, host: str, path: str, record_id: str) -> bool:
    """Delete the row if ``record_id`` still owns it (another move may have taken the path over)."""
    q = delete(target_volumes).where(
        target_volumes.c.host == host,
        target_volumes.c.path == path,
        target_volumes.c.record_id == record_id,
    )
    return bool(conn.execute(q).rowcount)


def _volume(r: RowMapping) -> TargetVolume:
    if r["kind"] not in _KINDS:
        raise StoreError(f"target_volumes.kind: stored value {r['kind']!r} is not known")
    if r["state"] not in _STATES:
        raise StoreError(f"target_volumes.state: stored value {r['state']!r} is not known")
    return TargetVolume(**{name: r[name] for name in _FIELDS})
