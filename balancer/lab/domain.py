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
# RAM a lab guest needs besides its tmpfs (live data + random seed + 4 MiB), measured with Debian's
# 6.1 kernel under TCG: the kernel keeps ~58 MiB of any guest (image, bss, memmap), and slab, the
# unpacked initramfs and the shell's processes take ~20 MiB more. A 128 MiB guest ran 90 s without
# an OOM kill with 48 MiB of tmpfs, and the OOM killer shot its dd every second with 60 MiB (so it
# dirtied nothing, and guests under that pressure oopsed after migrations); this leaves 4 MiB more.
GUEST_SYSTEM_MIB = 84
TMPFS_SLACK_MIB = 4
SYSTEM_EMULATOR = "/usr/bin/qemu-system-x86_64"
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
    console: bool = False  # a second serial port (pty) whose lines the guest runs as commands
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
        if self.live_mib < self.seed_mib:
            need = GUEST_SYSTEM_MIB + TMPFS_SLACK_MIB + 2 * self.seed_mib
            problems.append(
                f"memory_mib={self.memory_mib}: at least {need} with dirty_mib_s={self.dirty_mib_s} and "
                f"disk_mib_s={self.disk_mib_s} (the guest's system takes {GUEST_SYSTEM_MIB} MiB, "
                f"its live data and its {self.seed_mib} MiB random seed the rest)"
            )
        if not 0 <= self.cpu_burn_pct <= 100:
            problems.append(f"cpu_burn_pct={self.cpu_burn_pct}: 0 to 100")
        if problems:
            raise LabError("invalid lab guest: " + "; ".join(problems))

    @property
    def seed_mib(self) -> int:
        """MiB of random data the guest copies from to dirty its RAM and disk (see guest/init.sh)."""
        return max(self.dirty_mib_s, self.disk_mib_s, 1)

    @property
    def live_mib(self) -> int:
        """MiB of live data the guest keeps in RAM (a tmpfs): 3/8 of its memory, or less when the
        guest's system and the seed leave less room, so the guest never runs out of memory."""
        room = self.memory_mib - GUEST_SYSTEM_MIB - TMPFS_SLACK_MIB - self.seed_mib
        return min(self.memory_mib * 3 // 8, room)

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
        if self.console:
            parts.append("lab.console=1")
        return " ".join(parts)


def serial_log_path(name: str) -> str:
    return f"/var/log/libvirt/qemu/{name}.serial.log"


# The guest's console (ttyS1): what its owner types there, e.g. `poweroff` (Lab.guest_command).
CONSOLE_XML = """
    <serial type='pty'>
      <target port='1'/>
    </serial>"""
CONSOLE_DEVICE = "serial1"


def domain_xml(guest: LabGuest, kernel: str, initrd: str, emulator: str = SYSTEM_EMULATOR) -> str:
    """Persistent-domain XML: 1 vCPU, direct kernel boot, virtio qcow2 disk, serial to a file,
    no memballoon (RAM-dirtying TCG guests oopsed on arrival after some migrations with one; most
    likely the QEMU dirty-tracking bug found later, see guest/qemu-tcg.sh, but nothing needs a
    balloon). libvirt still reports the qemu process RSS as balloon.rss. `emulator`: the QEMU
    binary (the lab passes its wrapper for TCG guests)."""
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
    <emulator>{escape(emulator)}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{escape(guest.disk_path)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='{escape(guest.serial_log)}'/>
      <target port='0'/>
    </serial>{CONSOLE_XML if guest.console else ""}
    <memballoon model='none'/>
  </devices>
</domain>
"""
