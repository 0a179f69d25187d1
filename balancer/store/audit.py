"""The audit log: who asked for what. Written in the same transaction as the change it records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select

from balancer.store.records import AuditEntry
from balancer.store.tables import audit


def add(
    conn: Connection, actor: str, action: str, subject: str, now: float, detail: Mapping[str, Any] | None
) -> AuditEntry:
    data = dict(detail or {})
    row = {"at": now, "actor": actor, "action": action, "subject": subject, "detail": data}
    entry_id = conn.execute(insert(audit).values(row)).inserted_primary_key[0]  # type: ignore[index]
    return AuditEntry(int(entry_id), now, actor, action, subject, data)


def entries(
    conn: Connection,
    since: float | None,
    actor: str | None,
    subject: str | None,
    limit: int | None,
) -> tuple[AuditEntry, ...]:
    """Newest first."""
    q = select(audit).order_by(audit.c.at.desc(), audit.c.id.desc())
    if since is not None:
        q = q.where(audit.c.at >= since)
    if actor is not None:
        q = q.where(audit.c.actor == actor)
    if subject is not None:
        q = q.where(audit.c.subject == subject)
    if limit is not None:
        q = q.limit(limit)
    return tuple(_entry(r) for r in conn.execute(q).mappings())


def _entry(r: RowMapping) -> AuditEntry:
    return AuditEntry(
        id=r["id"], at=r["at"], actor=r["actor"], action=r["action"], subject=r["subject"], detail=r["detail"]
    )
