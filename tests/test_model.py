"""Snapshot.load_ratios: the one definition of a host's load shown by status, the API and /metrics."""

from __future__ import annotations

from tests.builders import host, snapshot, vm

GIB = 2**30


def test_load_ratios_are_vm_demand_over_capacity_and_zero_when_capacity_is_unknown() -> None:
    snap = snapshot(
        [host("h1", cpus=4.0, memory_bytes=16 * GIB), host("h2", cpus=0.0, memory_bytes=0)],
        [
            vm("a", "h1", cpu_cores=1.0, memory_bytes=4 * GIB),
            vm("b", "h1", cpu_cores=2.0, memory_bytes=8 * GIB),
            vm("c", "h2", cpu_cores=1.0, memory_bytes=GIB),
        ],
    )
    assert snap.load_ratios() == {"h1": {"cpu": 0.75, "memory": 0.75}, "h2": {"cpu": 0.0, "memory": 0.0}}
