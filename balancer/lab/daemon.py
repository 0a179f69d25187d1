"""One libvirtd per lab host: start it in the host's namespaces, await it, stop or kill it.

libvirtd runs with `-d --listen -f /etc/libvirt/libvirtd.conf -p D/hN/libvirtd.pid`: the pid file
lives outside /run, whose /run/libvirtd.pid belongs to any libvirtd of the machine itself.
libvirtd needs ~1.6 s to exit on SIGTERM; callers stopping several hosts signal all first.

QEMU capabilities: libvirt probes QEMU on first use (~4 s at 100% CPU per host) and caches the
result in /var/cache/libvirt/qemu/capabilities. The cache is validated against the binaries'
ctimes, so a copy from another host or an earlier lab is safe; the lab keeps one in
<cache root>/capscache and seeds every new host with it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import time
from pathlib import Path

import libvirt

from balancer.lab import procs
from balancer.lab.command import run
from balancer.lab.connection import connected
from balancer.lab.errors import LabError, LabTimeoutError
from balancer.lab.layout import LabLayout
from balancer.lab.mountns import enter_command
from balancer.lab.state import VirtType

STOP_GRACE_S = 15.0


def ensure_qemu_user() -> None:
    """libvirt 9.0 (Debian) resolves its built-in default user and group, both `libvirt-qemu`,
    before it reads qemu.conf; without them the QEMU driver fails to load even though qemu.conf
    says root. Debian's libvirt-daemon-system would create them (plus group kvm)."""
    for group in ("kvm", "libvirt-qemu"):
        try:
            grp.getgrnam(group)
        except KeyError:
            run(["groupadd", "--system", group])
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/var/lib/libvirt",
                "--shell",
                "/usr/sbin/nologin",
                "--gid",
                "libvirt-qemu",
                "--groups",
                "kvm",
                "libvirt-qemu",
            ]
        )


def pid(layout: LabLayout, host: str) -> int | None:
    """The host's running libvirtd, or None."""
    found = procs.read_pid(layout.pid_file(host))
    return found if found is not None and procs.is_running(found) else None


def spawn(layout: LabLayout, host: str) -> None:
    """Start libvirtd in the host's namespaces; returns once it has daemonised (not yet ready)."""
    if pid(layout, host) is not None:
        raise LabError(f"libvirtd of {host} is already running (pid {pid(layout, host)})")
    layout.pid_file(host).unlink(missing_ok=True)
    run(
        [
            *enter_command(layout, host),
            "libvirtd",
            "-d",
            "--listen",
            "-f",
            "/etc/libvirt/libvirtd.conf",
            "-p",
            str(layout.pid_file(host)),
        ],
        timeout=60,
    )


def wait_ready(layout: LabLayout, host: str, timeout: float = 30.0) -> None:
    """Await the moment the host's libvirtd answers on its socket with its drivers loaded."""
    log = layout.host_dir(host) / "log" / "libvirtd.log"
    started = time.monotonic()
    while True:
        try:
            with connected(layout.control_uri(host)) as conn:
                conn.getLibVersion()
                return
        except libvirt.libvirtError as exc:
            waited = time.monotonic() - started
            if waited > timeout:
                message = f"libvirtd of {host} not ready after {timeout} s ({exc}); see {log}"
                raise LabTimeoutError(message) from exc
            # the pid file appears a moment after `libvirtd -d` returns; no pid after 2 s = it died
            if waited > 2 and pid(layout, host) is None:
                raise LabError(f"libvirtd of {host} exited during start-up ({exc}); see {log}") from exc
        time.sleep(0.05)


def start(layout: LabLayout, host: str, timeout: float = 30.0) -> None:
    spawn(layout, host)
    wait_ready(layout, host, timeout)


def stop(layout: LabLayout, host: str, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM and await exit (SIGKILL after `grace` s). Running guests keep running."""
    running = pid(layout, host)
    if running is not None and procs.terminate([running], grace):
        raise LabError(f"libvirtd of {host} (pid {running}) survived SIGKILL")


def kill(layout: LabLayout, host: str) -> None:
    """SIGKILL, as a crash would, and await exit. Running guests keep running."""
    running = pid(layout, host)
    if running is None:
        return
    procs.send([running], signal.SIGKILL)
    if procs.wait_gone([running], 10.0):
        raise LabError(f"libvirtd of {host} (pid {running}) survived SIGKILL")


def _caps_dir(layout: LabLayout, host: str) -> Path:
    return layout.host_dir(host) / "cache" / "qemu" / "capabilities"


def _copy_tree_files(src: Path, dst: Path) -> None:
    if not src.is_dir():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file():
            tmp = dst / f".{item.name}.{os.getpid()}.tmp"
            shutil.copyfile(item, tmp)
            tmp.replace(dst / item.name)


def seed_caps(layout: LabLayout, host: str, caps_cache: Path) -> None:
    _copy_tree_files(caps_cache, _caps_dir(layout, host))


def probe_and_keep_caps(
    layout: LabLayout, host: str, virt_type: VirtType, caps_cache: Path, emulators: tuple[str, ...] = ()
) -> None:
    """Make the host probe QEMU now, the default binary and `emulators` (instant when its seeded
    cache is valid), and keep the result."""
    with connected(layout.control_uri(host)) as conn:
        for emulator in (None, *emulators):
            conn.getDomainCapabilities(emulator, "x86_64", None, virt_type, 0)
    _copy_tree_files(_caps_dir(layout, host), caps_cache)
