"""Simulator test setup: the repository root on sys.path (for ``bench``), one trace load per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from balancer.sim import trace as trace_mod
from balancer.sim.args import SimArgs

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def trace() -> trace_mod.Trace:
    return trace_mod.load()


@pytest.fixture
def small() -> SimArgs:
    """8 hosts, 160 VMs: the comparison's density (20 VMs per host) at a size that runs in a blink."""
    return SimArgs(hosts=8, vms=160)
