"""Take a lab down, and list whatever of it is left.

`down` works from what is on disk and in the kernel, not from a running Lab object, so it also
cleans up after an `up` that failed half way or a test run that was killed.
"""

from __future__ import annotations

import re
import shutil

from balancer.lab import daemon, hostdirs, mountns, netns, procs
from balancer.lab.errors import LabError, LabNotFoundError
from balancer.lab.layout import LabLayout

_HOST_DIR = re.compile(r"h[1-9][0-9]*")


def hosts_on_disk(layout: LabLayout) -> list[str]:
    if not layout.directory.is_dir():
        return []
    names = {p.name for p in layout.directory.iterdir() if _HOST_DIR.fullmatch(p.name)}
    if layout.ns_dir.is_dir():
        names |= {p.stem for p in layout.ns_dir.glob("h*.mnt")}
    return sorted(names, key=lambda name: int(name[1:]))


def lab_processes(layout: LabLayout, hosts: list[str]) -> list[int]:
    """libvirtd, qemu and anything run on a host: by mount namespace, by pid file, by command line
    (qemu runs in a private mount namespace of its own, and its command line names the lab's
    kernel; libvirtd's names its pid file)."""
    found: set[int] = set()
    for host in hosts:
        inode = procs.ns_inode(layout.mnt_handle(host))
        if inode is not None:
            found.update(procs.pids_in_mount_ns(inode))
        running = daemon.pid(layout, host)
        if running is not None:
            found.add(running)
        for pid_file in (layout.host_dir(host) / "run" / "qemu").glob("*.pid"):
            pid = procs.read_pid(pid_file)
            if pid is not None and procs.is_running(pid):
                found.add(pid)
    needle = f"{layout.directory}/"
    found.update(pid for pid in procs.all_pids() if needle in procs.cmdline(pid))
    return sorted(found - procs.ancestors())


def down(layout: LabLayout) -> None:
    """Stop every process, unmount, delete the namespaces, remove the lab directory.

    Only a directory holding a lab.json is treated as a lab: `down --dir ~` must not delete a home.
    """
    if not layout.state_file.exists():
        raise LabNotFoundError(f"no lab in {layout.directory} (no {layout.state_file.name}); nothing removed")
    hosts = hosts_on_disk(layout)
    # all at once: each libvirtd takes ~1.6 s to exit, so waiting host by host would add up
    survivors = procs.terminate(lab_processes(layout, hosts), daemon.STOP_GRACE_S)
    mountns.release(layout, hosts)
    netns.delete_all(layout)
    shutil.rmtree(layout.directory, ignore_errors=True)
    hostdirs.release_if_last(netns.other_netns(layout))
    if survivors:
        raise LabError(f"processes of lab {layout.directory} survived SIGKILL: {survivors}")


def check_clean(layout: LabLayout) -> list[str]:
    """Everything of the lab still present: mounts, network namespaces, processes, the directory."""
    left = []
    root = str(layout.directory)
    netns_prefix = f"{netns.NETNS_DIR}/bl{layout.tag}-"
    for mount in mountns.mounts():
        point = mount.mount_point
        if point == root or point.startswith(root + "/") or point.startswith(netns_prefix):
            left.append(f"mount: {point} ({mount.fstype})")
    left += [f"network namespace: {name}" for name in netns.lab_netns(layout)]
    needle = root + "/"
    for pid in sorted(set(procs.all_pids()) - procs.ancestors()):
        command = procs.cmdline(pid)
        if needle in command and procs.is_running(pid):
            left.append(f"process {pid}: {command[:300]}")
    if layout.directory.exists():
        left.append(f"directory: {root}")
    return left
