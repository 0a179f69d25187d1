"""libvirt connections to lab hosts, with libvirt's own stderr printing turned off.

libvirt prints every error to stderr unless an error handler is registered, including errors that
are expected and handled (a lookup of a domain that is on another host, a socket not up yet).
The exception still carries the code and message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

_silenced = False


def connect(uri: str) -> libvirt.virConnect:
    """Open a read-write connection; the caller closes it."""
    global _silenced
    if not _silenced:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _silenced = True
    return libvirt.open(uri)


@contextmanager
def connected(uri: str) -> Iterator[libvirt.virConnect]:
    conn = connect(uri)
    try:
        yield conn
    finally:
        conn.close()
