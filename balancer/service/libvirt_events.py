"""libvirt's event loop: needed once per process for connection keepalives to work.

Without a running event loop libvirt never sends or checks keepalive messages, so a call to a host
that vanished silently (power loss, a cut link) hangs until TCP gives up. The collector and the
executor both ask for keepalives (``setKeepAlive``); the service starts this loop before opening
any connection.
"""

from __future__ import annotations

import threading

import libvirt

_lock = threading.Lock()
_started = False


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and run it in a daemon thread (idempotent)."""
    global _started
    with _lock:
        if _started:
            return
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run, name="libvirt-events", daemon=True).start()
        _started = True


def _run() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()
