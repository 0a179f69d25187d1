"""The one place the store talks to SQLAlchemy's engine: connecting, transactions, and mapping errors.

Every read and write runs in ``Database.read()``/``write()``, which commit on success, roll back on
any exception, and turn SQLAlchemy/driver errors into ``StoreError`` carrying the database's own text.

SQLite: WAL journal (the API and the loop read while the other writes), a busy timeout, foreign keys
on, ``check_same_thread=False`` (the engine pools connections across threads). Switching a file to WAL
takes an exclusive lock and SQLite answers "database is locked" at once instead of waiting on the busy
timeout, so two instances opening a fresh file together retry that switch (it is set once per file).
Write transactions begin IMMEDIATE so two writers queue on the busy timeout instead of failing on a
lock upgrade.
JSON is strict on both backends (no NaN/Infinity), because PostgreSQL's JSONB rejects them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from balancer.errors import StoreError

_json_dumps = partial(json.dumps, allow_nan=False, separators=(",", ":"))
_WRITE = "balancer_write"


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"store.url {url!r} is not a database URL: {exc}") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"store.url {url!r}: only sqlite:///PATH and postgresql+psycopg://... are supported")
    return parsed


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory:
        assert url.database is not None
        try:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            # a new store file is the service's alone (SQLite gives its -wal and -shm the same mode)
            os.close(os.open(url.database, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot create {url.database} or its directory: {exc}") from exc
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout},
        json_serializer=_json_dumps,
        # one shared connection for :memory:, otherwise every connection would see its own empty DB
        **({"poolclass": StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver's implicit BEGIN off: "begin" below emits ours
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        if not memory:
            _use_wal(cur, busy_timeout)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _use_wal(cur: sqlite3.Cursor, busy_timeout: float) -> None:
    """Put the file in WAL mode, retrying for up to ``busy_timeout`` while another connection holds it."""

    @retry(
        retry=retry_if_exception(_locked),
        wait=wait_exponential(multiplier=0.01, max=0.2),
        stop=stop_after_delay(busy_timeout),
        reraise=True,
    )
    def switch() -> None:
        if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            cur.execute("PRAGMA journal_mode=WAL")

    switch()


def create(url: str, busy_timeout: float = 30.0) -> Engine:
    """An engine for ``url`` (sqlite:///PATH, sqlite:// for memory, postgresql+psycopg://...)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout)
    try:
        # A server that stops answering (a pause, a cut link) must not hang the lease or the tick for
        # longer than a lease: connects give up after 5 s and idle connections are probed by TCP
        # keepalives, so a call fails (StoreError) instead of blocking.
        return create_engine(
            parsed,
            pool_pre_ping=True,
            json_serializer=_json_dumps,
            connect_args={
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"store.url {parsed.render_as_string(hide_password=True)}: {exc}") from exc


def error_text(exc: BaseException) -> str:
    """The database's (or driver's) own message, without SQLAlchemy's SQL echo."""
    orig = getattr(exc, "orig", None)
    return " ".join(str(orig if orig is not None else exc).split())


class Database:
    """An engine plus the transaction scopes every store operation runs in."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.url = engine.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self, what: str) -> Iterator[Connection]:
        with self._scope(what, write=False) as conn:
            yield conn

    @contextmanager
    def write(self, what: str) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if anything in it raises."""
        with self._scope(what, write=True) as conn:
            yield conn

    @contextmanager
    def _scope(self, what: str, write: bool) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_WRITE: write})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"{what}: {error_text(exc)}") from exc
        except (ValueError, OverflowError) as exc:
            # values a driver refuses before the database sees them (NaN in JSON, ints beyond 64 bits)
            raise StoreError(f"{what}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()


def insert_for(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ``on_conflict_do_nothing``/``do_update`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
