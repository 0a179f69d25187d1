"""Fixtures: an app over a real Store (a SQLite file, and a database on the tests' PostgreSQL server)."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from balancer.api.app import ApiContext, create_app
from balancer.api.context import Live
from balancer.config import Config
from balancer.store import Store
from tests.api.harness import Aborts, Clock, config, context
from tests.pg import PgServer  # pg_server itself comes from tests/conftest.py

with warnings.catch_warnings():  # starlette asks for httpx2; the httpx-based client still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state/balancer.db"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"api_{next(_databases)}"
    yield server.create_database(name)
    with server.connect() as conn:  # dropped now, so the server's shutdown need not flush it
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url, now=0.0) as s:
        yield s


@pytest.fixture
def cfg(store_url: str) -> Config:
    return config(store_url)


@pytest.fixture
def aborts() -> Aborts:
    return Aborts()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(cfg: Config, store: Store, aborts: Aborts, clock: Clock) -> ApiContext:
    return context(cfg, store, aborts=aborts, clock=clock)


@pytest.fixture
def live(ctx: ApiContext) -> Live:
    return ctx.live


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as c:
        yield c
