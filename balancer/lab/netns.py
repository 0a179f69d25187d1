"""The lab network: one bridge in its own network namespace, one veth into each host's namespace.

Nothing is added to the root network namespace, so lab traffic (libvirt RPC, the RAM stream, the
NBD disk mirror) cannot leave the machine. Each host has eth0 with its lab address; the bridge
side of its link is v-<host> in the bridge namespace, which is what link_down cuts.
"""

from __future__ import annotations

import os
from pathlib import Path

from balancer.lab.command import run
from balancer.lab.layout import LabLayout

NETNS_DIR = Path("/run/netns")


def _ip(netns: str, *args: str) -> None:
    run(["ip", "-n", netns, *args])


def create_bridge(layout: LabLayout) -> None:
    br = layout.bridge_netns
    run(["ip", "netns", "add", br])
    _ip(br, "link", "set", "lo", "up")
    _ip(br, "link", "add", "br0", "type", "bridge")
    _ip(br, "link", "set", "br0", "up")


def add_host(layout: LabLayout, host: str) -> None:
    ns, br = layout.netns(host), layout.bridge_netns
    run(["ip", "netns", "add", ns])
    _ip(br, "link", "add", f"v-{host}", "type", "veth", "peer", "name", "eth0", "netns", ns)
    _ip(br, "link", "set", f"v-{host}", "master", "br0", "up")
    _ip(ns, "link", "set", "lo", "up")
    _ip(ns, "addr", "add", f"{layout.address(host)}/24", "dev", "eth0")
    _ip(ns, "link", "set", "eth0", "up")


def set_link(layout: LabLayout, host: str, up: bool) -> None:
    """Cut or restore the host's cable at the bridge; its eth0 keeps its address (no carrier)."""
    _ip(layout.bridge_netns, "link", "set", f"v-{host}", "up" if up else "down")


def lab_netns(layout: LabLayout) -> list[str]:
    """Network namespaces of this lab that still exist."""
    prefix = f"bl{layout.tag}-"
    return sorted(name for name in _netns_names() if name.startswith(prefix))


def other_netns(layout: LabLayout) -> list[str]:
    """Named network namespaces that are not this lab's: other labs, or anything else."""
    prefix = f"bl{layout.tag}-"
    return sorted(name for name in _netns_names() if not name.startswith(prefix))


def _netns_names() -> list[str]:
    return os.listdir(NETNS_DIR) if NETNS_DIR.is_dir() else []


def delete_all(layout: LabLayout) -> None:
    for name in lab_netns(layout):
        run(["ip", "netns", "del", name], check=False)
