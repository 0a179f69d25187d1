"""Acceptance: a 3-host lab runs a real live block migration, then leaves nothing behind.

The migration uses only libvirt's API, the way the executor will: the backing file goes to the
target by storage-volume download/upload, the overlay is pre-created there with pool.createXML
and a backingStore, then migrateToURI3 with NON_SHARED_INC and a bandwidth cap.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path

import libvirt
import pytest

from balancer.lab import Lab
from balancer.lab.domain import BASE_VOLUME
from balancer.lab.fixtures import LabTimings, unavailable_reason
from balancer.lab.storage import overlay_volume_xml

pytestmark = pytest.mark.lab

FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    | libvirt.VIR_MIGRATE_NON_SHARED_INC
)
BANDWIDTH_MIB_S = 50
CHUNK = 1 << 20


def copy_volume(src: libvirt.virConnect, dst: libvirt.virConnect, pool: str, name: str) -> int:
    """Copy a raw volume between hosts through libvirt streams; returns the bytes copied."""
    source = src.storagePoolLookupByName(pool).storageVolLookupByName(name)
    capacity = source.info()[1]
    xml = (
        f"<volume><name>{name}</name><capacity unit='bytes'>{capacity}</capacity>"
        "<target><format type='raw'/></target></volume>"
    )
    target = dst.storagePoolLookupByName(pool).createXML(xml, 0)
    down, up = src.newStream(0), dst.newStream(0)
    source.download(down, 0, 0, 0)
    target.upload(up, 0, 0, 0)
    copied = 0
    while data := down.recv(CHUNK):
        if not isinstance(data, bytes):  # -2 would mean "try again" on a non-blocking stream
            raise AssertionError(f"unexpected stream result {data!r}")
        up.send(data)
        copied += len(data)
    down.finish()
    up.finish()
    return copied


def precreate_overlay(src: libvirt.virConnect, dst: libvirt.virConnect, volume: str) -> None:
    """Create on dst an empty qcow2 overlay with the source overlay's size and backing file."""
    source = src.storagePoolLookupByName("images").storageVolLookupByName(volume)
    desc = ET.fromstring(source.XMLDesc(0))
    backing_path = desc.findtext("backingStore/path")
    backing_format = desc.find("backingStore/format")
    assert backing_path and backing_format is not None
    xml = overlay_volume_xml(volume, source.info()[1], backing_path, backing_format.get("type", "raw"))
    dst.storagePoolLookupByName("images").createXML(xml, 0)


def test_live_block_migration_keeps_the_guest_running_and_its_disk(tmp_path, lab_timings: LabTimings) -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    lab = Lab.up(hosts=3, directory=tmp_path / "lab")
    lab_timings.record("acceptance: lab up", time.monotonic() - started)
    try:
        # h2 gets no guest, so it has no base image until the migration's preparation copies it
        placement = {"mig": "h1", "stay1": "h1", "stay3": "h3"}
        started = time.monotonic()
        guests = {name: lab.create_guest(name, host) for name, host in placement.items()}
        for name, host in placement.items():
            lab.wait_heartbeat(host, name, timeout=120)
        # the guests' load runs: no OOM kill (its dd would dirty nothing), nor any other trouble
        trouble = {name: lab.guest_trouble(host, name) for name, host in placement.items()}
        assert trouble == {name: [] for name in placement}
        lab_timings.record("acceptance: 3 guests created to all first heartbeats", time.monotonic() - started)
        guest = guests["mig"]
        # TCG guests run on the lab's wrapper, which gives QEMU 8 KiB more RAM (guest/qemu-tcg.sh)
        if lab.virt_type == "qemu":
            pid = Path(lab.host_path("h1", "/run/libvirt/qemu/mig.pid")).read_text().strip()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert argv[argv.index(b"-m") + 1] == b"131080k"

        with closing(lab.connect("h1")) as h1, closing(lab.connect("h2")) as h2:
            assert BASE_VOLUME not in h2.storagePoolLookupByName("base").listVolumes()
            assert copy_volume(h1, h2, "base", BASE_VOLUME) == 128 << 20
            precreate_overlay(h1, h2, guest.volume_name)
            before = lab.disk_checksum("h1", "mig", skip_mib=guest.disk_window_mib)
            beat_before = lab.wait_heartbeat("h1", "mig")

            params = {
                libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS: ["vda"],
                libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: BANDWIDTH_MIB_S,
            }
            started = time.monotonic()
            h1.lookupByName("mig").migrateToURI3(lab.host("h2").migration_uri, params, FLAGS)
            lab_timings.record(f"migration h1->h2 at {BANDWIDTH_MIB_S} MiB/s", time.monotonic() - started)

            last_on_h1 = lab.heartbeat("h1", "mig")
            assert last_on_h1 is not None and last_on_h1 >= beat_before
            assert lab.wait_live_arrival("h2", "mig", after=last_on_h1) > last_on_h1

            with pytest.raises(libvirt.libvirtError) as gone:
                h1.lookupByName("mig")
            assert gone.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
            moved = h2.lookupByName("mig")
            assert moved.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            assert moved.isPersistent()
            # everything past the guest's write window: overlay data (16-64 MiB) and base (64-128)
            assert lab.disk_checksum("h2", "mig", skip_mib=guest.disk_window_mib) == before

        for name in ("stay1", "stay3"):  # the neighbours did not notice
            host = placement[name]
            assert lab.wait_heartbeat(host, name, after=lab.heartbeat(host, name)) > 1
    finally:
        started = time.monotonic()
        lab.down()
        lab_timings.record("acceptance: lab down (3 guests running)", time.monotonic() - started)
    assert lab.check_clean() == []
