"""Schema migrations: from empty, re-open, pending steps, a failing step, a newer schema refused."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from balancer.errors import StoreError
from balancer.store import Store
from balancer.store.db import Database, create
from balancer.store.migrations import LATEST, STEPS, Step, _ddl, current_version, migrate
from balancer.store.tables import metadata


def _versions(url: str) -> list[tuple[int, str, float]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version, name, applied_at FROM schema_version ORDER BY version"))
            return [tuple(r) for r in rows]  # type: ignore[misc]
    finally:
        engine.dispose()


def test_an_empty_database_is_migrated_to_the_latest_version(store: Store, store_url: str) -> None:
    assert store.schema_version() == LATEST == store.latest_schema_version
    assert [v for v, _, _ in _versions(store_url)] == [s.version for s in STEPS]


def test_the_migrated_schema_has_exactly_the_columns_queries_use(store: Store, store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        found = inspect(engine)
        assert set(found.get_table_names()) == set(metadata.tables)
        for name, table in metadata.tables.items():
            assert [c["name"] for c in found.get_columns(name)] == [c.name for c in table.columns], name
    finally:
        engine.dispose()


def test_reopening_applies_nothing_and_keeps_the_data(store_url: str) -> None:
    with Store.open(store_url, now=1.0) as first:
        drain, _ = first.create_drain("n1", "alice", now=10.0)
    with Store.open(store_url, now=2.0) as second:
        assert second.schema_version() == LATEST
        assert second.get_drain(drain.id) == drain
    assert _versions(store_url) == [(s.version, s.name, 1.0) for s in STEPS]


def test_pending_steps_are_applied_in_order_and_recorded(store: Store, store_url: str) -> None:
    extra = (
        Step(LATEST + 1, "add a", _ddl("CREATE TABLE extra_a (x INTEGER)")),
        Step(LATEST + 2, "add b", _ddl("CREATE TABLE extra_b (y INTEGER)")),
    )
    db = Database(create(store_url))
    try:
        with db.write("test") as conn:
            assert migrate(conn, 50.0, STEPS + extra) == (LATEST + 1, LATEST + 2)
        with db.write("test") as conn:
            assert migrate(conn, 60.0, STEPS + extra) == ()
            assert current_version(conn) == LATEST + 2
    finally:
        db.close()
    assert _versions(store_url)[-2:] == [(LATEST + 1, "add a", 50.0), (LATEST + 2, "add b", 50.0)]


def test_a_failing_step_rolls_back_every_step_of_the_run(store: Store, store_url: str) -> None:
    extra = (
        Step(LATEST + 1, "good", _ddl("CREATE TABLE extra_a (x INTEGER)")),
        Step(LATEST + 2, "bad", _ddl("CREATE TABLE extra_a (x INTEGER)")),  # exists already
    )
    db = Database(create(store_url))
    try:
        with pytest.raises(StoreError, match="extra_a"), db.write("migrate") as conn:
            migrate(conn, 50.0, STEPS + extra)
    finally:
        db.close()
    assert store.schema_version() == LATEST
    engine = create_engine(store_url)
    try:
        assert "extra_a" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused_with_both_versions_named(store: Store, store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_version VALUES (:v, 'from the future', 0)"), {"v": LATEST + 1})
    engine.dispose()
    with pytest.raises(StoreError, match=rf"version {LATEST + 1}, newer than .* \(up to {LATEST}\)"):
        Store.open(store_url)


def test_two_instances_opening_a_fresh_database_at_once_both_succeed(store_url: str) -> None:
    results: list[object] = []
    start = threading.Barrier(2)

    def open_one() -> None:
        start.wait()
        try:
            with Store.open(store_url) as s:
                results.append(s.schema_version())
        except StoreError as exc:
            results.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [LATEST, LATEST]
    assert [v for v, _, _ in _versions(store_url)] == [s.version for s in STEPS]


def test_sqlite_creates_the_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "balancer.db"
    with Store.open(f"sqlite:///{path}") as s:
        assert s.dialect == "sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_sqlite_in_memory_works_for_one_process() -> None:
    with Store.open("sqlite://") as s:
        s.create_drain("n1", "alice", now=1.0)
        assert [d.host for d in s.drains()] == ["n1"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://u@h/db", "only sqlite"),
        ("postgresql+psycopg://u:secret@127.0.0.1:1/db", "127.0.0.1"),
    ],
)
def test_bad_or_unreachable_urls_raise_store_error(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        Store.open(url)
    assert "secret" not in str(info.value)


def test_many_instances_opening_fresh_sqlite_files_at_once_never_see_a_lock(tmp_path: Path) -> None:
    # Switching a fresh file to WAL takes an exclusive lock that SQLite does not wait for; the first
    # open of each file races the others' switch. Many rounds make a missing retry show: without it
    # half the runs of 30 rounds failed here, so 100 rounds.
    def open_one(url: str, start: threading.Barrier, errors: list[StoreError]) -> None:
        start.wait()
        try:
            Store.open(url).close()
        except StoreError as exc:
            errors.append(exc)

    for round_ in range(100):
        url = f"sqlite:///{tmp_path}/r{round_}/balancer.db"
        start = threading.Barrier(4)
        errors: list[StoreError] = []
        threads = [threading.Thread(target=open_one, args=(url, start, errors)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"round {round_}: {errors}"
