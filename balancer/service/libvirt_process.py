"""libvirt's process-wide set-up, done once where a process starts (``balancer run``, the CLI, the tests),
never as a side effect of importing a module.

* ``quiet_errors()``: libvirt prints every error to stderr unless a handler is registered, including
  errors that are expected and handled (a domain looked up on the wrong host, a host that is down).
  The exceptions still carry libvirt's code and text; ours are kept in samples, records and logs.
* ``ensure_event_loop()``: without a running event loop libvirt never sends or checks keepalive
  messages, so a call to a host that vanished silently (power loss, a cut link) hangs until TCP gives
  up. The collector and the executor both ask for keepalives (``setKeepAlive``); the daemon starts this
  loop before opening any connection.
"""

from __future__ import annotations

import threading

import libvirt

_lock = threading.Lock()
_quiet = False
_loop = False


def quiet_errors() -> None:
    """Register a handler that drops libvirt's stderr printing (idempotent; errors still raise)."""
    global _quiet
    with _lock:
        if not _quiet:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _quiet = True


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and run it in a daemon thread (idempotent)."""
    global _loop
    with _lock:
        if _loop:
            return
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run, name="libvirt-events", daemon=True).start()
        _loop = True


def prepare() -> None:
    """Everything a long-running process that talks to libvirtd needs: both of the above."""
    quiet_errors()
    ensure_event_loop()


def _run() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()
