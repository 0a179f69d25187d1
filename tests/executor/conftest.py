"""Executor tests: the simulated cluster and a real SQLite store for the fast tests; the lab for the rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from exec_simcluster import SimCluster

from balancer.executor.facts import MigrationEndpoint
from balancer.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'journal.db'}")
    yield s
    s.close()


@pytest.fixture
def sim() -> SimCluster:
    return SimCluster()


@pytest.fixture
def sim_endpoints(sim: SimCluster) -> dict[str, MigrationEndpoint]:
    return {h: MigrationEndpoint(h, f"sim://{h}", f"sim://{h}/system") for h in sim.hosts}
