"""Pick the lab guests' domain type: kvm only where hardware virtualisation really works.

Some machines expose /dev/kvm backed by PVM ("Pagetable-based VM", kvm_pvm), a paravirtual KVM
that runs stock guest kernels by instruction emulation: a Debian kernel was still decompressing
after 150 s. There TCG (domain type qemu) boots the lab guest in ~8 s, so `auto` picks kvm only
when /dev/kvm exists, the CPU flags show vmx or svm, and nothing mentions kvm_pvm.
"""

from __future__ import annotations

import os
from pathlib import Path

from balancer.lab.command import run
from balancer.lab.errors import LabError
from balancer.lab.state import VirtType

VIRT_TYPE_CHOICES = ("auto", "qemu", "kvm")


def _cpu_has_virtualisation() -> bool:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"vmx", "svm"})
    return False


def _pvm_present() -> bool:
    if Path("/sys/module/kvm_pvm").exists():
        return True
    modules = Path("/proc/modules")
    if modules.exists() and "kvm_pvm" in modules.read_text():
        return True
    return "kvm_pvm" in run(["dmesg"], check=False, timeout=10).stdout


def detect_virt_type() -> VirtType:
    if not os.path.exists("/dev/kvm") or not _cpu_has_virtualisation() or _pvm_present():
        return "qemu"
    return "kvm"


def resolve_virt_type(choice: str) -> VirtType:
    """`auto` -> detect_virt_type(); `qemu` and `kvm` force that type."""
    if choice == "auto":
        return detect_virt_type()
    if choice == "qemu":
        return "qemu"
    if choice == "kvm":
        return "kvm"
    raise LabError(f"virt_type={choice!r}: one of {', '.join(VIRT_TYPE_CHOICES)}")
