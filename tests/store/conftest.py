"""Fixtures: every store test runs against a SQLite file and a real PostgreSQL database.

``store_url`` is a fresh database per test: a SQLite file under ``tmp_path`` (in a directory that
does not exist yet, so ``Store.open`` must create it) or a new, empty schema on the session's
PostgreSQL server from ``tests/pg.py`` (connections to it see nothing else).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from balancer.store import Store
from tests.pg import PgServer  # the pg_server fixture itself is registered in tests/conftest.py

_schemas = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/balancer.db"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_schema(f"store_{next(_schemas)}")


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens another Store on the test's database (a second process, as far as the DB can tell)."""
    opened: list[Store] = []

    def _open() -> Store:
        opened.append(Store.open(store_url, now=0.0))
        return opened[-1]

    yield _open
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()
