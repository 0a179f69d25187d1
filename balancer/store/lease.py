"""The leader lease: one row per name, a term (``epoch``) per change of holder, expiry on the store's clock.

Clocks. Expiry is judged by one clock that every contender shares, never by comparing instances' clocks:

* PostgreSQL: the server's own ``clock_timestamp()`` (epoch seconds) inside each statement;
* SQLite: the store is one file on one host, so the host's monotonic clock (``CLOCK_MONOTONIC``, the same
  for every process of a boot) with the boot id in ``clock``: a lease written in another boot is
  expired. A wall-clock step on the host changes nothing.

Statements:

* acquire: ``UPDATE ... SET holder, epoch = epoch + 1, expires_at = now + ttl WHERE expires_at <= now OR
  clock <> mine OR holder = me`` (and, for the very first lease, ``INSERT ... ON CONFLICT DO NOTHING``
  with epoch 1). A holder may replace its own unexpired lease: a process whose term lapsed locally
  (its deadline passed before a renewal came back) starts a new term at once, and the new epoch fences
  off anything still acting under the old one. Holder ids are unique per process start.
  On PostgreSQL (READ COMMITTED) a racing UPDATE waits for the other's row lock and re-checks its WHERE
  against the new row, so exactly one contender wins; SQLite serialises writers (BEGIN IMMEDIATE).
* renew: only the holder, at its epoch, before expiry. A lease that expired is never renewed: its
  holder must acquire again and gets a new epoch, so anything still running under the old one is
  fenced off even when nobody else took over in between.
* release: expire the row now; the epoch stays, so terms keep growing.
* fence: leader-only writes first read the row ``FOR SHARE`` (holder, epoch, clock, unexpired) in
  their own transaction. A takeover's UPDATE waits for those writes to commit, and a write that starts
  after a takeover sees the new holder and fails with ``LeaseLost``: leader-only writes are linearised
  with changes of leader.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Float, cast, func, literal, or_, select, update

from balancer.errors import LeaseLost
from balancer.store.db import insert_for
from balancer.store.records import Fence, Lease, LeaseGrant
from balancer.store.tables import leader

PG_CLOCK = "postgresql"
LocalClock = Callable[[], float]


@cache
def boot_id() -> str:
    """This boot's id: monotonic readings from another boot are not comparable with ours."""
    try:
        return "boot:" + Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: the best we have is the process-independent monotonic clock
        return "boot:unknown"


def clock_id(conn: Connection) -> str:
    return PG_CLOCK if conn.dialect.name == "postgresql" else boot_id()


def now_expr(conn: Connection, local: LocalClock = time.monotonic) -> Any:
    """The store's clock in a statement: PostgreSQL's server time, else this host's monotonic clock."""
    if conn.dialect.name == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return literal(local(), Float)


def acquire(conn: Connection, name: str, holder: str, ttl: float, local: LocalClock) -> LeaseGrant | None:
    """Take the lease if it is free, expired or our own (a new epoch); None when someone else holds it."""
    now, clock = now_expr(conn, local), clock_id(conn)
    taken = conn.execute(
        update(leader)
        .where(
            leader.c.name == name,
            or_(leader.c.expires_at <= now, leader.c.clock != clock, leader.c.holder == holder),
        )
        .values(holder=holder, epoch=leader.c.epoch + 1, expires_at=now + ttl, clock=clock)
        .returning(leader.c.epoch, leader.c.expires_at)
    ).first()
    if taken is None:
        taken = conn.execute(
            insert_for(conn, leader)
            .values(name=name, holder=holder, epoch=1, expires_at=now + ttl, clock=clock)
            .on_conflict_do_nothing(index_elements=[leader.c.name])
            .returning(leader.c.epoch, leader.c.expires_at)
        ).first()
    return None if taken is None else _grant(taken, ttl)


def renew(
    conn: Connection, name: str, holder: str, epoch: int, ttl: float, local: LocalClock
) -> LeaseGrant | None:
    """Extend our unexpired lease at ``epoch``; None when it expired or another holder has it."""
    now, clock = now_expr(conn, local), clock_id(conn)
    row = conn.execute(
        update(leader)
        .where(
            leader.c.name == name,
            leader.c.holder == holder,
            leader.c.epoch == epoch,
            leader.c.clock == clock,
            leader.c.expires_at > now,
        )
        .values(expires_at=now + ttl)
        .returning(leader.c.epoch, leader.c.expires_at)
    ).first()
    return None if row is None else _grant(row, ttl)


def _grant(row: Any, ttl: float) -> LeaseGrant:
    expires = float(row.expires_at)
    return LeaseGrant(epoch=int(row.epoch), store_now=expires - ttl, expires_at=expires)


def release(conn: Connection, name: str, holder: str, epoch: int | None) -> bool:
    """Expire our lease now (the epoch stays); False when ``holder`` did not hold it."""
    q = update(leader).where(leader.c.name == name, leader.c.holder == holder)
    if epoch is not None:
        q = q.where(leader.c.epoch == epoch)
    return conn.execute(q.values(expires_at=-1.0)).rowcount == 1


def current(conn: Connection, name: str, local: LocalClock) -> Lease | None:
    """The lease if someone holds it now (by the store's clock); None when nobody leads."""
    now, clock = now_expr(conn, local), clock_id(conn)
    row = conn.execute(
        select(leader).where(leader.c.name == name, leader.c.expires_at > now, leader.c.clock == clock)
    ).first()
    if row is None:
        return None
    return Lease(name=row.name, holder=row.holder, epoch=int(row.epoch), expires_at=float(row.expires_at))


def check(conn: Connection, fence: Fence, local: LocalClock) -> None:
    """Fail closed unless ``fence`` still holds its lease; locks the row FOR SHARE until commit."""
    now, clock = now_expr(conn, local), clock_id(conn)
    q = select(leader.c.epoch).where(
        leader.c.name == fence.name,
        leader.c.holder == fence.holder,
        leader.c.epoch == fence.epoch,
        leader.c.clock == clock,
        leader.c.expires_at > now,
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(read=True)
    if conn.execute(q).first() is None:
        raise LeaseLost(
            f"leader-only write refused: {fence.holder} no longer holds lease {fence.name!r} at epoch "
            f"{fence.epoch} (expired, released or taken over)"
        )


def store_now(conn: Connection) -> float | None:
    """PostgreSQL's clock in epoch seconds (None on SQLite, whose lease clock is not a wall clock)."""
    if conn.dialect.name != "postgresql":
        return None
    return float(conn.execute(select(now_expr(conn))).scalar_one())
