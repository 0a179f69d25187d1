"""Fixtures for collection tests (helpers live in testdriver_hosts.py)."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from testdriver_hosts import SilentServer


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    # unix socket paths are limited to ~108 bytes, so not under pytest's long tmp_path
    directory = tempfile.mkdtemp(prefix="balancer-hang-", dir="/tmp")
    path = Path(directory) / "sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    listener.settimeout(0.05)
    server = SilentServer(uri=f"qemu+unix:///system?socket={path}")
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            server.accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join()
    for conn in server.accepted:  # releases the libvirt calls still waiting on them
        conn.close()
    listener.close()
    path.unlink()
    Path(directory).rmdir()
