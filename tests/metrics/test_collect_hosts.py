"""Collecting several real test-driver hosts into one Snapshot: capacity, VMs, storage, overrides."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from testdriver_hosts import endpoint

from balancer.metrics.args import CollectionArgs
from balancer.metrics.collector import Collector
from balancer.metrics.libvirt_source import LibvirtSource
from balancer.model import HostState, Snapshot, snapshot_from_json, snapshot_to_json

GIB = 1 << 30
MIB = 1 << 20


@pytest.fixture
def snap() -> Iterator[Snapshot]:
    with Collector.for_endpoints([endpoint("host-a"), endpoint("host-b"), endpoint("host-c")]) as c:
        yield c.tick(time.time())


def test_every_host_is_up_in_endpoint_order_with_the_nodes_capacity(snap: Snapshot) -> None:
    assert [(h.name, h.state) for h in snap.hosts] == [
        ("host-a", HostState.UP),
        ("host-b", HostState.UP),
        ("host-c", HostState.UP),
    ]
    a = snap.host("host-a")
    assert (a.cpus, a.memory_bytes) == (16.0, 64 * GIB)
    assert (snap.host("host-b").cpus, snap.host("host-b").memory_bytes) == (8.0, 32 * GIB)
    assert (a.hypervisor, a.hypervisor_version, a.cpu_model) == ("TEST", 2, "x86_64")
    assert a.libvirt_version >= 9_000_000
    assert a.error is None


def test_vms_are_listed_per_host_by_name_with_state_size_and_persistence(snap: Snapshot) -> None:
    assert [(v.host, v.name) for v in snap.vms] == [
        ("host-a", "batch1"),
        ("host-a", "db1"),
        ("host-a", "scratch"),
        ("host-a", "web1"),
        ("host-a", "web2"),
        ("host-b", "app1"),
        ("host-b", "app2"),
        ("host-c", "lone"),
    ]
    web2 = snap.vm("web2")
    assert (web2.state, web2.vcpus, web2.memory_bytes) == ("running", 2, 2 * GIB)  # currentMemory
    assert web2.uuid == "a0000000-0000-4000-8000-000000000002"
    assert snap.vm("batch1").state == "shutoff"
    assert snap.vm("batch1").memory_used_bytes == 0
    assert snap.vm("app2").state == "paused"
    assert snap.vm("scratch").persistent is False
    assert snap.vm("db1").persistent is True
    assert not any(v.migrating for v in snap.vms)  # the test driver has no jobs, reasons are 0


def test_storage_pools_give_disk_capacity_and_the_files_present(snap: Snapshot) -> None:
    a = snap.host("host-a")
    # the test driver fixes every pool's capacity at 100 GiB; allocation is the sum of its volumes
    used = 2560 * MIB + 1536 * MIB + 3 * GIB + 1 * GIB + 6 * GIB + 40 * GIB
    assert a.disk_capacity_bytes == 100 * GIB
    assert a.disk_free_bytes == 100 * GIB - used
    assert "/var/lib/libvirt/images/_base/ubuntu-22.04.qcow2" in a.backing_files
    assert "/srv/vm/_base/app-golden.qcow2" in snap.host("host-b").backing_files
    c = snap.host("host-c")
    assert (c.disk_capacity_bytes, c.disk_free_bytes, c.backing_files) == (0, 0, ())


def test_endpoint_overrides_replace_reported_capacity_and_labels_pass_through() -> None:
    ep = endpoint(
        "host-a", cpus=12.0, memory_bytes=48 * GIB, disk_capacity_bytes=60 * GIB, labels={"rack": "r1"}
    )
    with Collector.for_endpoints([ep]) as c:
        h = c.tick(time.time()).host("host-a")
    assert (h.cpus, h.memory_bytes, h.disk_capacity_bytes) == (12.0, 48 * GIB, 60 * GIB)
    pools_used = 100 * GIB - 46 * GIB
    assert h.disk_free_bytes == 60 * GIB - pools_used
    assert h.labels == {"rack": "r1"}


def test_collected_snapshot_round_trips_through_json(snap: Snapshot) -> None:
    assert snapshot_from_json(snapshot_to_json(snap)) == snap


def test_raw_samples_carry_node_facts_and_poll_duration() -> None:
    with LibvirtSource([endpoint("host-b")], CollectionArgs()) as source:
        (sample,) = source.collect(time.time())
    assert sample.ok and sample.node is not None
    assert sample.node.volumes == (
        "/srv/vm/_base/app-golden.qcow2",
        "/srv/vm/_base/ubuntu-22.04.qcow2",
        "/srv/vm/app1.qcow2",
    )
    assert 0 < sample.duration_seconds < 5
    app1 = next(v for v in sample.vms if v.name == "app1")
    assert app1.cpu_time_ns is not None  # from virDomainGetInfo: the test driver's bulk stats lack it


def test_duplicate_host_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        LibvirtSource([endpoint("host-a"), endpoint("host-a")])


def test_dirty_rate_measurement_unsupported_by_the_driver_leaves_hosts_up_at_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="balancer.metrics.libvirt_source")
    # dirty_rate_seconds > 0 opens read-write and starts measurements; the test driver (like TCG)
    # cannot measure, which is remembered per connection and reads as 0 bytes/s
    with Collector.for_endpoints([endpoint("host-b")], CollectionArgs(dirty_rate_seconds=1)) as c:
        c.tick(0.0)
        snap = c.tick(1.0)
    assert snap.host("host-b").state == HostState.UP
    assert all(v.dirty_rate_bytes_s == 0.0 for v in snap.vms)
    assert sum("event=dirty_rate_unsupported" in r.message for r in caplog.records) == 1
