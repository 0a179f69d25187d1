"""Executor tests: the simulated cluster and a real SQLite store for the fast tests; the lab for the rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from balancer.executor.facts import MigrationEndpoint
from balancer.sim.hypervisor import SimHosts
from balancer.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'journal.db'}")
    yield s
    s.close()


@pytest.fixture
def sim() -> SimHosts:
    return SimHosts.small()


@pytest.fixture
def sim_endpoints(sim: SimHosts) -> dict[str, MigrationEndpoint]:
    return {h: MigrationEndpoint(h, f"sim://{h}", f"sim://{h}/system") for h in sim.hosts}
