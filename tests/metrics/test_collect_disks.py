"""Disk bytes and backing chains: what the planner prices a migration with.

The test driver has no block stats, so these bytes come from the storage-pool volumes; the
QEMU-shaped ``block.<n>.*`` path is covered with a recorded record in test_domain_record.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from testdriver_hosts import endpoint

from balancer.metrics.collector import Collector
from balancer.model import BackingFile, Disk, Snapshot

GIB = 1 << 30
MIB = 1 << 20


@pytest.fixture(scope="module")
def snap() -> Iterator[Snapshot]:
    with Collector.for_endpoints([endpoint("host-a"), endpoint("host-b"), endpoint("host-c")]) as c:
        yield c.tick(time.time())


def test_overlay_and_its_base_are_priced_separately(snap: Snapshot) -> None:
    (vda,) = snap.vm("web1").disks  # the cdrom is not a disk a block migration copies
    assert vda == Disk(
        target="vda",
        path="/var/lib/libvirt/images/web1.qcow2",
        format="qcow2",
        virtual_bytes=10 * GIB,
        allocated_bytes=3 * GIB,
        backing=(
            BackingFile(
                path="/var/lib/libvirt/images/_base/ubuntu-22.04.qcow2",
                format="qcow2",
                virtual_bytes=10 * GIB,
                allocated_bytes=2560 * MIB,
            ),
        ),
    )
    assert vda.chain_bytes == 3 * GIB + 2560 * MIB


def test_two_level_chain_is_kept_top_down(snap: Snapshot) -> None:
    (vda,) = snap.vm("app1").disks
    assert [b.path for b in vda.backing] == [
        "/srv/vm/_base/app-golden.qcow2",
        "/srv/vm/_base/ubuntu-22.04.qcow2",
    ]
    assert vda.chain_bytes == (768 + 512 + 2560) * MIB
    assert snap.vm("app1").backing_paths == (
        "/srv/vm/_base/app-golden.qcow2",
        "/srv/vm/_base/ubuntu-22.04.qcow2",
    )


def test_several_disks_add_up_per_vm(snap: Snapshot) -> None:
    db1 = snap.vm("db1")
    assert [(d.target, d.format) for d in db1.disks] == [("vda", "qcow2"), ("vdb", "raw")]
    assert db1.disk_allocated_bytes == 6 * GIB + 40 * GIB
    assert db1.disks[1].backing == ()


def test_an_image_in_no_pool_has_unknown_size_zero_but_keeps_its_path(snap: Snapshot) -> None:
    (vda,) = snap.vm("lone").disks
    assert (vda.path, vda.format, vda.virtual_bytes, vda.allocated_bytes) == ("/data/lone.img", "raw", 0, 0)


def test_backing_files_in_use_count_as_present_on_the_host(snap: Snapshot) -> None:
    assert set(snap.vm("web1").backing_paths) <= set(snap.host("host-a").backing_files)
    assert set(snap.vm("app1").backing_paths) <= set(snap.host("host-b").backing_files)


def test_planner_arrays_see_the_disk_bytes(snap: Snapshot) -> None:
    arrays = snap.arrays()
    row = arrays.vm_names.index("db1")
    assert arrays.demand[row, 2] == 46 * GIB
