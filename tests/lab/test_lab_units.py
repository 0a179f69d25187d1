"""The lab's pure parts, without namespaces or libvirtd: names, paths, XML, parsing, archives."""

from __future__ import annotations

import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from balancer.lab import LabError, LabGuest, LabHost
from balancer.lab.config_yaml import render
from balancer.lab.cpio import CpioEntry, newc_archive
from balancer.lab.domain import GUEST_SYSTEM_MIB, TMPFS_SLACK_MIB, domain_xml
from balancer.lab.guest_image import module_load_order
from balancer.lab.layout import LabLayout
from balancer.lab.serial import kernel_trouble, last_heartbeat, saw_boot


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data) of a newc archive, up to the trailer."""
    members, offset = {}, 0
    while True:
        assert data[offset : offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        name_at = offset + 110
        name = data[name_at : name_at + name_size - 1].decode()
        data_at = name_at + name_size + (-(110 + name_size) % 4)
        if name == "TRAILER!!!":
            return members
        members[name] = (mode, data[data_at : data_at + size])
        offset = data_at + size + (-size % 4)


def test_newc_archive_round_trips_files_dirs_and_devices() -> None:
    archive = newc_archive(
        [
            CpioEntry.directory("bin"),
            CpioEntry.file("bin/x", b"abc", executable=True),
            CpioEntry.char_device("console", 5, 1),
            CpioEntry.file("init", b"#!/bin/sh\n"),
        ]
    )
    members = parse_newc(archive)
    assert members["bin/x"] == (stat.S_IFREG | 0o755, b"abc")
    assert stat.S_ISDIR(members["bin"][0]) and stat.S_ISCHR(members["console"][0])
    assert members["init"][1] == b"#!/bin/sh\n"
    assert len(archive) % 4 == 0


def test_layout_derives_distinct_names_and_maps_host_paths() -> None:
    one, two = LabLayout.of("/tmp/lab-a"), LabLayout.of("/tmp/lab-b")
    assert one.tag != two.tag and one.netns("h1") == f"bl{one.tag}-h1"
    assert one.address("h3") == f"10.77.{one.subnet_octet}.13"
    assert one.control_uri("h2") == "qemu+unix:///system?socket=/tmp/lab-a/h2/run/libvirt-sock"
    assert one.migration_uri("h2") == "qemu+tcp://h2/system"
    assert one.host_path("h2", "/var/lib/libvirt/images/g.qcow2") == Path("/tmp/lab-a/h2/lib/images/g.qcow2")
    assert one.host_path("h1", "/etc/hosts") == Path("/tmp/lab-a/hosts")
    assert one.host_path("h1", "/usr/bin/qemu-img") == Path("/usr/bin/qemu-img")
    with pytest.raises(LabError, match="too long"):
        LabLayout.of("/tmp/" + "x" * 100).check_usable(3)


def test_guest_rejects_impossible_knobs_all_at_once() -> None:
    with pytest.raises(LabError) as raised:
        LabGuest("bad name", "h1", memory_mib=32, disk_mib_s=40, cpu_burn_pct=101)
    message = str(raised.value)
    assert "name=" in message and "memory_mib=32" in message and "disk_mib_s=40" in message
    assert "cpu_burn_pct=101" in message


def test_guest_live_data_fits_beside_its_kernel_and_seed() -> None:
    # guest RAM = system + tmpfs (live + seed + slack); 3/8 of RAM at most (as before, for big guests)
    cases = [(128, 8, 1), (128, 16, 0), (96, 0, 0), (96, 4, 0), (256, 0, 0), (4096, 64, 8)]
    for memory, dirty, disk in cases:
        guest = LabGuest("g", "h1", memory_mib=memory, dirty_mib_s=dirty, disk_mib_s=disk)
        assert guest.seed_mib == max(dirty, disk, 1)
        assert guest.seed_mib <= guest.live_mib <= memory * 3 // 8
        assert GUEST_SYSTEM_MIB + guest.live_mib + guest.seed_mib + TMPFS_SLACK_MIB <= memory
    assert LabGuest("g", "h1").live_mib == 32  # 128 MiB, 8 MiB/s: was 48, and the guest OOM-killed its dd
    assert LabGuest("g", "h1", memory_mib=256).live_mib == 96


def test_guest_too_small_for_its_load_names_the_memory_it_needs() -> None:
    with pytest.raises(LabError) as raised:
        LabGuest("g", "h1", memory_mib=96, dirty_mib_s=16)
    assert "memory_mib=96: at least 120 with dirty_mib_s=16" in str(raised.value)
    assert LabGuest("g", "h1", memory_mib=120, dirty_mib_s=16).live_mib == 16


def test_kernel_trouble_finds_oom_kills_and_oopses_only(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    assert kernel_trouble(log) == []
    log.write_bytes(
        b"LABGUEST up dirty=8\r\nHB 1 up=5.1\r\n"
        b"[   5.2] Out of memory: Killed process 108 (dd) total-vm:3284kB\r\nHB 2 up=6.0\r\n"
        b"[ 335.6] list_del corruption. next->prev should be fffff8bd40166208\r\n"
        b"[ 335.6] kernel BUG at lib/list_debug.c:62!\r\nHB 3 up=7.0\r\n"
    )
    assert kernel_trouble(log) == [
        "[   5.2] Out of memory: Killed process 108 (dd) total-vm:3284kB",
        "[ 335.6] list_del corruption. next->prev should be fffff8bd40166208",
        "[ 335.6] kernel BUG at lib/list_debug.c:62!",
    ]
    assert kernel_trouble(log, limit=1) == ["[   5.2] Out of memory: Killed process 108 (dd) total-vm:3284kB"]
    log.write_bytes(b"LABGUEST up dirty=8\r\nHB 1 up=5.1\r\nHB 2 up=6.0\r\n")
    assert kernel_trouble(log) == []


def test_domain_xml_boots_the_lab_kernel_with_the_load_on_its_command_line() -> None:
    guest = LabGuest("g1", "h1", dirty_mib_s=4, cpu_burn_pct=30)
    root = ET.fromstring(domain_xml(guest, "/lab/guest/vmlinuz", "/lab/guest/initrd.gz"))
    assert root.get("type") == "qemu"
    cmdline = root.findtext("os/cmdline") or ""
    assert "tsc=unstable" in cmdline and "lab.dirty_mb=4" in cmdline and "lab.cpu_burn=30" in cmdline
    disk = root.find("devices/disk/source")
    assert disk is not None and disk.get("file") == "/var/lib/libvirt/images/g1.qcow2"
    serial = root.find("devices/serial/source")
    assert serial is not None and serial.get("path") == "/var/log/libvirt/qemu/g1.serial.log"
    assert root.findtext("devices/emulator") == "/usr/bin/qemu-system-x86_64"
    wrapped = ET.fromstring(domain_xml(guest, "/l/vmlinuz", "/l/initrd.gz", "/lab/guest/qemu-tcg"))
    assert wrapped.findtext("devices/emulator") == "/lab/guest/qemu-tcg"
    balloon = root.find("devices/memballoon")
    assert balloon is not None and balloon.get("model") == "none"  # see domain_xml: crashes with a balloon
    kvm = LabGuest("g2", "h1", virt_type="kvm")
    assert "tsc=unstable" not in kvm.cmdline()


def test_heartbeat_reads_only_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    assert last_heartbeat(log) is None and not saw_boot(log)
    log.write_bytes(b"junk\r\nLABGUEST up dirty=8\r\nHB 11 up=20.1\r\nHB 12 up=21.3\r\nHB 1")
    assert last_heartbeat(log) == 12
    assert saw_boot(log)


def test_config_yaml_has_exactly_the_balancer_keys() -> None:
    host = LabHost(
        "h1", "qemu+unix:///system?socket=/x/h1/run/libvirt-sock", "qemu+tcp://h1/system", "10.77.1.11"
    )
    document = yaml.safe_load(render([host], cpus=2, memory_mib=512))
    assert document == {
        "hosts": [
            {
                "name": "h1",
                "uri": host.control_uri,
                "migration_uri": "qemu+tcp://h1/system",
                "labels": {"lab": "true"},
                "capacity": {"cpus": 2.0, "memory_mib": 512},
            }
        ]
    }


def fake_module(root: Path, relative: str, depends: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF....\0license=GPL\0depends=" + depends.encode() + b"\0name=x\0")


def test_module_load_order_puts_dependencies_first_and_skips_builtins(tmp_path: Path) -> None:
    fake_module(tmp_path, "kernel/drivers/virtio/virtio_pci.ko", "virtio,virtio_ring")
    fake_module(tmp_path, "kernel/drivers/virtio/virtio.ko", "virtio_ring")
    fake_module(tmp_path, "kernel/drivers/virtio/virtio_ring.ko", "")
    fake_module(tmp_path, "kernel/drivers/block/virtio_blk.ko", "virtio,virtio_ring")
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio_ring.ko\n")
    order = [name for name, _ in module_load_order(tmp_path, ("virtio_pci", "virtio_blk"))]
    assert order == ["virtio", "virtio_pci", "virtio_blk"]
    with pytest.raises(LabError, match="virtio_balloon"):
        module_load_order(tmp_path, ("virtio_balloon",))


def test_guest_init_script_ships_with_the_package() -> None:
    from importlib import resources

    script = (resources.files("balancer.lab") / "guest" / "init.sh").read_text()
    assert script.startswith("#!/bin/busybox sh") and "HB $i" in script and "LABGUEST up" in script


def test_a_guest_with_a_console_gets_a_pty_serial_port_and_the_knob() -> None:
    plain, with_console = LabGuest("g", "h1"), LabGuest("g", "h1", console=True)
    assert "lab.console" not in plain.cmdline() and "type='pty'" not in domain_xml(plain, "k", "i")
    assert "lab.console=1" in with_console.cmdline()
    assert "<serial type='pty'>" in domain_xml(with_console, "k", "i")
