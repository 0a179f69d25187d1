"""The leader lease for HA: one row per lease name, taken over only once it has expired.

Acquire is one conditional UPDATE (mine, or expired) and, if no row matched, one INSERT ... ON
CONFLICT DO NOTHING RETURNING; the rows touched say who won. On PostgreSQL (READ COMMITTED) a racing UPDATE
waits for the other's row lock and re-checks its WHERE against the new row, and a racing INSERT
waits for the other's commit and then does nothing, so exactly one contender gets a row.
A lease is held while ``now < expires_at``.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, or_, select, update

from balancer.store.db import insert_for
from balancer.store.records import Lease
from balancer.store.tables import leader


def acquire_or_renew(conn: Connection, name: str, holder: str, now: float, ttl: float) -> bool:
    expires = now + ttl
    taken = conn.execute(
        update(leader)
        .where(leader.c.name == name, or_(leader.c.holder == holder, leader.c.expires_at <= now))
        .values(holder=holder, expires_at=expires)
    )
    if taken.rowcount == 1:
        return True
    inserted = conn.execute(
        insert_for(conn, leader)
        .values(name=name, holder=holder, expires_at=expires)
        .on_conflict_do_nothing(index_elements=[leader.c.name])
        .returning(leader.c.name)
    )
    return inserted.first() is not None


def release(conn: Connection, name: str, holder: str) -> bool:
    """Give the lease up now; False when ``holder`` did not hold it."""
    gone = conn.execute(delete(leader).where(leader.c.name == name, leader.c.holder == holder))
    return gone.rowcount == 1


def current(conn: Connection, name: str, now: float) -> Lease | None:
    """The lease if someone holds it at ``now``; None when nobody leads."""
    row = conn.execute(select(leader).where(leader.c.name == name, leader.c.expires_at > now)).first()
    return None if row is None else Lease(name=row.name, holder=row.holder, expires_at=row.expires_at)
