"""Write an initramfs archive (cpio "newc" format) from memory, without the cpio tool.

The format is a 110-byte ASCII header per entry (magic 070701 and 13 hex fields), the NUL-ended
name padded to 4 bytes, then the data padded to 4 bytes, closed by a "TRAILER!!!" entry.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CpioEntry:
    """One archive member: path without a leading slash, full st_mode, content or device numbers."""

    name: str
    mode: int
    data: bytes = b""
    rdev_major: int = 0
    rdev_minor: int = 0

    @classmethod
    def directory(cls, name: str) -> CpioEntry:
        return cls(name, stat.S_IFDIR | 0o755)

    @classmethod
    def file(cls, name: str, data: bytes, executable: bool = False) -> CpioEntry:
        return cls(name, stat.S_IFREG | (0o755 if executable else 0o644), data)

    @classmethod
    def char_device(cls, name: str, major: int, minor: int) -> CpioEntry:
        return cls(name, stat.S_IFCHR | 0o600, b"", major, minor)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _member(ino: int, entry: CpioEntry) -> bytes:
    name = entry.name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (
        ino,
        entry.mode,
        0,
        0,
        nlink,
        0,
        len(entry.data),
        0,
        0,
        entry.rdev_major,
        entry.rdev_minor,
        len(name),
        0,
    )
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    return header + name + _pad4(len(header) + len(name)) + entry.data + _pad4(len(entry.data))


def newc_archive(entries: Iterable[CpioEntry]) -> bytes:
    """The archive bytes; parent directories must come before their members."""
    parts = [_member(ino, entry) for ino, entry in enumerate(entries, start=1)]
    parts.append(_member(0, CpioEntry("TRAILER!!!", 0)))
    return b"".join(parts)
