"""Bring a lab's hosts up: files, network, namespaces, libvirtd, storage pools.

Order matters: the network namespaces exist before the mount namespaces (made from inside them,
for a sysfs of their own), and the first libvirtd probes QEMU before the others start, so they
reuse its capabilities cache instead of each probing for ~4 s on a 2-core machine.
"""

from __future__ import annotations

import shutil

from balancer.lab import daemon, hostconf, hostdirs, mountns, netns, storage
from balancer.lab.connection import connected
from balancer.lab.errors import LabError, LabExistsError
from balancer.lab.guest_image import ensure_tcg_emulator
from balancer.lab.layout import LabLayout, cache_root
from balancer.lab.state import LabState

REQUIRED_TOOLS = ("ip", "nsenter", "unshare", "mount", "umount", "libvirtd", "qemu-system-x86_64", "qemu-img")
_HOST_SUBDIRS = (
    "etc/qemu", "etc/nwfilter", "etc/secrets", "etc/storage",
    "run", "lib/images", "lib/base", "log/qemu", "cache",
)  # fmt: skip


def check_can_start(layout: LabLayout, hosts: int) -> None:
    """Refuse before making anything: a lab already there, a directory in use, missing tools."""
    layout.check_usable(hosts)
    if layout.state_file.exists() or layout.ns_dir.exists():
        raise LabExistsError(f"a lab already exists in {layout.directory}; run `balancer lab down` first")
    if layout.directory.exists() and any(layout.directory.iterdir()):
        # `down` removes the whole directory, so it must hold nothing but the lab
        raise LabError(f"{layout.directory} exists and is not empty; give a new or empty directory")
    if netns.lab_netns(layout):
        raise LabExistsError(f"network namespaces of this lab exist already: {netns.lab_netns(layout)}")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(
            f"missing tools: {', '.join(missing)} (Debian: libvirt-daemon-driver-qemu, "
            "qemu-system-x86, qemu-utils, iproute2, util-linux)"
        )


def build(layout: LabLayout, state: LabState) -> None:
    """Make everything of the lab after its lab.json; the caller tears down on failure."""
    hosts = state.hosts
    caps_cache = cache_root() / "capscache"
    daemon.ensure_qemu_user()
    hostdirs.ensure()
    layout.hosts_file.write_text(hostconf.hosts_file(layout, hosts))
    layout.guest_dir.mkdir(exist_ok=True)
    layout.tmp_dir.mkdir(exist_ok=True)
    for host in hosts:
        _write_host_files(layout, host)
    mountns.prepare_handle_dir(layout)
    netns.create_bridge(layout)
    for host in hosts:
        netns.add_host(layout, host)
        mountns.create_host(layout, host)
    first, rest = hosts[0], hosts[1:]
    daemon.seed_caps(layout, first, caps_cache)
    daemon.start(layout, first)
    # TCG guests run on the lab's QEMU wrapper: probe it once here, not in a migration's pre-check
    wrappers = (str(ensure_tcg_emulator(cache_root() / "guest")),) if state.virt_type == "qemu" else ()
    daemon.probe_and_keep_caps(layout, first, state.virt_type, caps_cache, wrappers)
    for host in rest:
        daemon.seed_caps(layout, host, caps_cache)
        daemon.spawn(layout, host)
    for host in rest:
        daemon.wait_ready(layout, host)
    for host in hosts:
        with connected(layout.control_uri(host)) as conn:
            storage.define_pools(conn)


def _write_host_files(layout: LabLayout, host: str) -> None:
    root = layout.host_dir(host)
    for sub in _HOST_SUBDIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "libvirtd.conf").write_text(hostconf.libvirtd_conf(layout, host))
    (root / "etc" / "qemu.conf").write_text(hostconf.qemu_conf(layout, host))
    (root / "etc" / "libvirt.conf").write_text("")
