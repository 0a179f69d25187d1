"""Helpers for collection tests: libvirt test-driver hosts and hosts that refuse or never answer.

Each ``test:///…/host-x.xml`` open gets a fresh in-memory copy of that file's host, so tests do not
see each other's changes. The test driver's bulk stats carry only ``state.*``; everything else comes
from the per-domain fallbacks (see balancer/metrics/domain.py).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from balancer.metrics.source import HostEndpoint

TESTDRIVER = Path(__file__).resolve().parents[1] / "data" / "testdriver"
REFUSED_URI = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"


def testdriver_uri(name: str) -> str:
    return f"test://{TESTDRIVER / name}.xml"


def endpoint(name: str, **overrides: object) -> HostEndpoint:
    """An endpoint for tests/data/testdriver/<name>.xml."""
    return HostEndpoint(name=name, uri=testdriver_uri(name), **overrides)  # type: ignore[arg-type]


@dataclass
class SilentServer:
    """A unix socket that accepts libvirt connections and never answers them."""

    uri: str
    accepted: list[socket.socket] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len(self.accepted)
