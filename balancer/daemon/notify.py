"""systemd's readiness protocol (``sd_notify``) without libsystemd: one datagram to ``$NOTIFY_SOCKET``.

The unit says ``Type=notify``; the service sends ``READY=1`` once the API is bound and the first tick
ran, ``RELOADING=1``/``READY=1`` around a SIGHUP reload and ``STOPPING=1`` on SIGTERM. Outside systemd
(no ``$NOTIFY_SOCKET``) every call is a no-op. The protocol is a single ``sendto`` (sd_notify(3)); the
PyPI wrappers add nothing but a dependency.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("balancer.daemon")


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd; False when not run by systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("event=notify_failed state=%r error=%r", state, str(exc))
        return False
    return True
