"""SimSource + the real Collector: the smoothed snapshot equals the trace's load, averaged over the window."""

from __future__ import annotations

import numpy as np
import pytest

from balancer.metrics.args import CollectionArgs
from balancer.metrics.collector import Collector
from balancer.metrics.source import LoadSource
from balancer.sim import cluster as cluster_mod
from balancer.sim.args import SimArgs
from balancer.sim.source import SimSource
from balancer.sim.trace import Trace

STEP = 300.0


def test_counters_accrue_the_trace_cores(trace: Trace, small: SimArgs) -> None:
    c = cluster_mod.build(small, trace)
    src: LoadSource = SimSource(c)
    first = {v.name: v.cpu_time_ns for s in src.collect(c.t0) for v in s.vms}
    second = {v.name: v.cpu_time_ns for s in src.collect(c.t0 + STEP) for v in s.vms}
    for i, name in enumerate(c.vm_names):
        got = ((second[name] or 0) - (first[name] or 0)) / 1e9 / STEP
        assert got == pytest.approx(c.cores[i, 0], abs=1e-6)


@pytest.mark.parametrize("window", [1, 5])
def test_collector_window_gives_the_trace_mean(trace: Trace, small: SimArgs, window: int) -> None:
    c = cluster_mod.build(small, trace)
    collector = Collector(SimSource(c), CollectionArgs(window=window, history=12))
    for k in range(12):
        snap = collector.tick(c.t0 + k * STEP)
    # the rate read at tick k covers interval k-1; the window averages the last ``window`` of them
    expect = c.cores[:, 11 - window : 11].mean(axis=1)
    got = np.array([snap.vm(n).cpu_cores for n in c.vm_names])
    np.testing.assert_allclose(got, expect, atol=1e-9)
    hosts = np.bincount(c.placement, expect, c.n_hosts)
    np.testing.assert_allclose([snap.host(h).cpu_history[-1] for h in c.host_names], hosts, atol=1e-9)
    assert [h.cpus for h in snap.hosts] == [float(small.host_cpus)] * small.hosts


def test_snapshot_carries_sizes_disks_and_backing_files(trace: Trace, small: SimArgs) -> None:
    c = cluster_mod.build(small, trace)
    snap = Collector(SimSource(c)).tick(c.t0)
    vm = snap.vm(c.vm_names[0])
    assert vm.memory_bytes == c.memory[0] and vm.vcpus == c.vcpus[0]
    assert vm.disk_allocated_bytes == c.overlay[0]
    assert vm.backing_paths == (c.image_paths[c.image[0]],)
    assert vm.backing_paths[0] in snap.host(vm.host).backing_files
    assert sum(len(snap.vms_on(h)) for h in c.host_names) == small.vms


def test_the_migration_overhead_shows_in_the_source_vm_counter(trace: Trace, small: SimArgs) -> None:
    c = cluster_mod.build(small, trace)
    src = SimSource(c)
    before = {v.name: v.cpu_time_ns or 0 for s in src.collect(c.t0) for v in s.vms}
    c.begin_migration(0, (int(c.placement[0]) + 1) % c.n_hosts)
    after = {v.name: v.cpu_time_ns or 0 for s in src.collect(c.t0 + STEP) for v in s.vms}
    cores = (after[c.vm_names[0]] - before[c.vm_names[0]]) / 1e9 / STEP
    assert cores == pytest.approx(c.cores[0, 0] + small.migration_overhead_cores, abs=1e-6)
