"""Find, signal and await processes that are not our children (libvirtd daemonises, qemu is its child).

Exit is awaited through pidfds, which become readable when the process exits, so no fixed sleeps;
a daemonised process is reparented to PID 1 and may linger as a zombie, which counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Iterable
from pathlib import Path


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_running(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def ns_inode(path: Path | str) -> int | None:
    """Inode of a namespace (a handle file or /proc/<pid>/ns/<kind>), None if it is gone."""
    try:
        return os.stat(path).st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def pids_in_mount_ns(inode: int) -> list[int]:
    """Live processes whose mount namespace has this inode."""
    return [pid for pid in all_pids() if ns_inode(f"/proc/{pid}/ns/mnt") == inode and is_running(pid)]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def ancestors() -> set[int]:
    """This process and its parents: their command lines may name the lab, but they are not the lab."""
    found = set()
    pid = os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ValueError, IndexError):
            break
    return found


def send(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Await the exit of every pid for at most `timeout` seconds; return those still running."""
    poller = select.poll()
    fds: dict[int, int] = {}
    try:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            fds[fd] = pid
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for fd, _ in poller.poll(remaining * 1000):
                poller.unregister(fd)
                os.close(fd)
                del fds[fd]
        return sorted(pid for pid in fds.values() if is_running(pid))
    finally:
        for fd in fds:
            os.close(fd)


def terminate(pids: list[int], grace: float) -> list[int]:
    """SIGTERM all, await up to `grace` s, SIGKILL the rest and await them; return any survivors."""
    send(pids, signal.SIGTERM)
    left = wait_gone(pids, grace)
    if left:
        send(left, signal.SIGKILL)
        left = wait_gone(left, 5.0)
    return left
