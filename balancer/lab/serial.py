"""Read a lab guest's serial log: its last heartbeat, whether it booted there, kernel trouble."""

from __future__ import annotations

import re
from pathlib import Path

BOOT_BANNER = b"LABGUEST up"
# only complete lines: a line still being written ("HB 1" of "HB 12") would read as a step back
_HEARTBEAT = re.compile(rb"HB (\d+)[^\n]*\n")
_TAIL_BYTES = 8192
# What the guest kernel prints when it is in trouble, even with `quiet` (all at KERN_ERR or above):
# an OOM kill, an oops or BUG, a panic, a corrupted list, a lockup or an RCU stall.
_TROUBLE = re.compile(
    rb"[^\n]*(?:Out of memory|Kernel panic|kernel BUG|BUG:|Oops|general protection fault|"
    rb"corruption|soft lockup|hard LOCKUP|rcu: INFO)[^\n]*"
)


def last_heartbeat(log: Path) -> int | None:
    """The counter of the last complete `HB <n>` line, or None (no file or no heartbeat yet)."""
    try:
        with open(log, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - _TAIL_BYTES))
            beats = _HEARTBEAT.findall(handle.read())
    except FileNotFoundError:
        return None
    return int(beats[-1]) if beats else None


def saw_boot(log: Path) -> bool:
    """True if the guest printed its boot banner into this log (it booted on this host)."""
    try:
        return BOOT_BANNER in log.read_bytes()
    except FileNotFoundError:
        return False


def kernel_trouble(log: Path, limit: int = 5) -> list[str]:
    """The first `limit` lines where the guest kernel reported trouble (none: an empty list)."""
    try:
        data = log.read_bytes()
    except FileNotFoundError:
        return []
    found = _TROUBLE.findall(data)[:limit]
    return [line.decode(errors="replace").strip() for line in found]


def tail(log: Path, size: int = 600) -> str:
    """The end of the log, for error messages."""
    try:
        return log.read_bytes()[-size:].decode(errors="replace")
    except FileNotFoundError:
        return f"<{log} does not exist>"
