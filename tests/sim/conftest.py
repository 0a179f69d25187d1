"""Simulator test setup: one trace load per session (``bench`` imports from the root: pythonpath ["."])."""

from __future__ import annotations

import pytest

from balancer.sim import trace as trace_mod
from balancer.sim.args import SimArgs


@pytest.fixture(scope="session")
def trace() -> trace_mod.Trace:
    return trace_mod.load()


@pytest.fixture
def small() -> SimArgs:
    """8 hosts, 160 VMs: the comparison's density (20 VMs per host) at a size that runs in a blink."""
    return SimArgs(hosts=8, vms=160)
