"""A lab host's mount and UTS namespaces: private bind mounts over libvirt's directories.

Each host gets persistent namespace handles D/ns/hN.mnt and D/ns/hN.uts (bind mounts of nsfs
files). `unshare --mount=<file>` needs the file's parent mount to have private propagation,
hence the private bind mount of D/ns onto itself. The host's mount namespace is made while
already inside its network namespace, so the fresh sysfs shows only its own interfaces and
hides /sys/fs/cgroup (libvirt then uses no cgroups, as qemu.conf asks).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from balancer.lab.command import run
from balancer.lab.layout import HOST_BINDS, HOSTS_FILE_IN_HOST, LabLayout


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo, reduced to what the lab looks at."""

    mount_point: str
    fstype: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[Mount]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        found.append(Mount(_unescape(before.split()[4]), after.split()[0]))
    return found


def enter_command(layout: LabLayout, host: str) -> list[str]:
    """Prefix that runs a command in the host's mount, UTS and network namespaces (like ssh)."""
    return [
        "nsenter",
        f"--mount={layout.mnt_handle(host)}",
        f"--uts={layout.uts_handle(host)}",
        f"--net={layout.netns_path(host)}",
        "--",
    ]


def prepare_handle_dir(layout: LabLayout) -> None:
    layout.ns_dir.mkdir(parents=True, exist_ok=True)
    run(["mount", "--bind", layout.ns_dir, layout.ns_dir])
    run(["mount", "--make-private", layout.ns_dir])


def create_host(layout: LabLayout, host: str) -> None:
    """Make the host's mount+UTS namespaces (inside its netns) with its private bind mounts."""
    for handle in (layout.mnt_handle(host), layout.uts_handle(host)):
        handle.touch()
    steps = [["hostname", host], ["mount", "-t", "sysfs", "sysfs", "/sys"]]
    # The new namespace starts as a copy of ours, including the namespace handles of other labs
    # and hosts; holding copies would keep those namespaces alive after their owners removed them.
    steps += [["umount", "-l", m.mount_point] for m in mounts() if m.fstype == "nsfs"]
    host_dir = layout.host_dir(host)
    steps += [["mount", "--bind", str(host_dir / sub), inside] for inside, sub in HOST_BINDS.items()]
    steps.append(["mount", "--bind", str(layout.hosts_file), HOSTS_FILE_IN_HOST])
    script = "\n".join(
        shlex.join(step) + (" 2>/dev/null || true" if step[:2] == ["umount", "-l"] else "") for step in steps
    )
    run(
        [
            "nsenter",
            f"--net={layout.netns_path(host)}",
            "--",
            "unshare",
            f"--mount={layout.mnt_handle(host)}",
            f"--uts={layout.uts_handle(host)}",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-ec",
            script,
        ]
    )


def release(layout: LabLayout, hosts: list[str]) -> None:
    """Unmount the hosts' namespace handles and the handle directory; missing ones are fine."""
    for host in hosts:
        for handle in (layout.mnt_handle(host), layout.uts_handle(host)):
            run(["umount", handle], check=False)
    if any(m.mount_point == str(layout.ns_dir) for m in mounts()):
        run(["umount", layout.ns_dir], check=False)
