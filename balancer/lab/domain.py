"""LabGuest (a lab VM's parameters and in-host paths) and its libvirt domain XML.

Disk layout, the way Nova lays it out on non-shared storage:
    /var/lib/libvirt/base/labguest-base.raw   backing file, pool `base`, per host
    /var/lib/libvirt/images/<vm>.qcow2        qcow2 overlay on it, pool `images`, per host
The kernel and initrd live in the lab directory, the same path on every host (like firmware), so
a migration does not copy them. The serial port writes to /var/log/libvirt/qemu/<vm>.serial.log
on whichever host runs the guest, so after a migration the heartbeat continues in the target's file
(qemu truncates the file when it opens it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from uuid import uuid4
from xml.sax.saxutils import escape

from balancer.lab.errors import LabError
from balancer.lab.state import VirtType

IMAGES_POOL_DIR = "/var/lib/libvirt/images"
BASE_POOL_DIR = "/var/lib/libvirt/base"
BASE_VOLUME = "labguest-base.raw"
BASE_VIRTUAL_MIB = 128
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


@dataclass(frozen=True)
class LabGuest:
    """A lab VM as created: load knobs (per second, in MiB) and where its files are in its host.

    disk_window_mib: the guest writes only to the first disk_window_mib MiB of its disk, so the
    rest of the guest-visible disk stays constant while it runs (see Lab.disk_checksum).
    """

    name: str
    host: str
    memory_mib: int = 128
    overlay_mib: int = 64
    dirty_mib_s: int = 8
    disk_mib_s: int = 1
    cpu_burn_pct: int = 0
    disk_window_mib: int = 16
    virt_type: VirtType = "qemu"
    uuid: str = field(default_factory=lambda: str(uuid4()))

    def __post_init__(self) -> None:
        problems = []
        if not _NAME.fullmatch(self.name):
            problems.append(f"name={self.name!r}: letters, digits, '_', '.', '-'; at most 63")
        if not 64 <= self.memory_mib <= 4096:
            problems.append(f"memory_mib={self.memory_mib}: 64 to 4096")
        if not 0 <= self.overlay_mib <= BASE_VIRTUAL_MIB:
            problems.append(f"overlay_mib={self.overlay_mib}: 0 to {BASE_VIRTUAL_MIB} (the disk size)")
        if not 1 <= self.disk_window_mib <= BASE_VIRTUAL_MIB:
            problems.append(f"disk_window_mib={self.disk_window_mib}: 1 to {BASE_VIRTUAL_MIB}")
        if not 0 <= self.disk_mib_s <= self.disk_window_mib:
            problems.append(f"disk_mib_s={self.disk_mib_s}: 0 to disk_window_mib={self.disk_window_mib}")
        if not 0 <= self.dirty_mib_s <= self.live_mib:
            problems.append(f"dirty_mib_s={self.dirty_mib_s}: 0 to the live data size {self.live_mib}")
        if not 0 <= self.cpu_burn_pct <= 100:
            problems.append(f"cpu_burn_pct={self.cpu_burn_pct}: 0 to 100")
        if problems:
            raise LabError("invalid lab guest: " + "; ".join(problems))

    @property
    def live_mib(self) -> int:
        """MiB of live data the guest keeps in RAM; 3/8 of its memory leaves room for the kernel."""
        return self.memory_mib * 3 // 8

    @property
    def disk_path(self) -> str:
        return f"{IMAGES_POOL_DIR}/{self.volume_name}"

    @property
    def volume_name(self) -> str:
        return f"{self.name}.qcow2"

    @property
    def serial_log(self) -> str:
        return serial_log_path(self.name)

    def cmdline(self) -> str:
        parts = ["console=ttyS0", "panic=-1", "quiet"]
        if self.virt_type == "qemu":
            # under TCG the TSC clocksource hung ~30% of guests after a migration
            parts.append("tsc=unstable")
        parts += [
            f"lab.dirty_mb={self.dirty_mib_s}",
            f"lab.live_mb={self.live_mib}",
            f"lab.disk_mb={self.disk_mib_s}",
            f"lab.disk_window_mb={self.disk_window_mib}",
            f"lab.cpu_burn={self.cpu_burn_pct}",
        ]
        return " ".join(parts)


def serial_log_path(name: str) -> str:
    return f"/var/log/libvirt/qemu/{name}.serial.log"


def domain_xml(guest: LabGuest, kernel: str, initrd: str) -> str:
    """Persistent-domain XML: 1 vCPU, direct kernel boot, virtio qcow2 disk, serial to a file,
    no memballoon: with a virtio balloon polling stats, RAM-dirtying TCG guests crashed after some
    migrations (kernel oopses on arrival, seen in the executor tests); the recipe's balloon-less
    guest never did. libvirt still reports the qemu process RSS as balloon.rss."""
    return f"""\
<domain type='{guest.virt_type}'>
  <name>{escape(guest.name)}</name>
  <uuid>{guest.uuid}</uuid>
  <memory unit='MiB'>{guest.memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(kernel)}</kernel>
    <initrd>{escape(initrd)}</initrd>
    <cmdline>{escape(guest.cmdline())}</cmdline>
  </os>
  <features><acpi/></features>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{escape(guest.disk_path)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='{escape(guest.serial_log)}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""
