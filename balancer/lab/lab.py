"""Lab: N libvirt compute hosts on this machine, so real live block migrations run between them.

Each host hN is a separate libvirtd in its own mount, UTS and network namespace (see layout.py
for the directory layout, mountns.py and netns.py for the isolation). From the root namespace:

    lab = Lab.up(hosts=3, directory="/tmp/mylab")      # or Lab.open(...) from another process
    h1 = lab.hosts[0]          # h1.control_uri: qemu+unix:///system?socket=...  (use from here)
                               # h1.migration_uri: qemu+tcp://h1/system (the source libvirtd dials it)
    lab.create_guest("g1", "h1")
    lab.wait_heartbeat("h1", "g1")
    lab.down()

Guests print `HB <n>` every second to a serial log; a counter that goes on in the target host's
log proves a live migration, a boot banner there proves a restart (`rebooted`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import libvirt

from balancer.lab import bringup, config_yaml, daemon, mountns, netns, serial, storage, teardown
from balancer.lab.accel import resolve_virt_type
from balancer.lab.command import run
from balancer.lab.connection import connect, connected
from balancer.lab.domain import CONSOLE_DEVICE, SYSTEM_EMULATOR, LabGuest, domain_xml, serial_log_path
from balancer.lab.errors import LabError, LabTimeoutError
from balancer.lab.guest_image import ensure_guest_image, ensure_tcg_emulator
from balancer.lab.layout import LabLayout, cache_root, default_lab_dir, host_name
from balancer.lab.state import LabState, VirtType

_STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pm suspended",
}


@dataclass(frozen=True)
class LabHost:
    """A lab compute host and how to reach it."""

    name: str
    control_uri: str  # from the root namespace (unix socket)
    migration_uri: str  # from another lab host, e.g. as migrateToURI3's dconnuri
    address: str  # its address inside the lab network


@dataclass(frozen=True)
class LabDomain:
    """A domain as one host's libvirtd reports it."""

    host: str
    name: str
    state: str
    persistent: bool


class Lab:
    """A running lab; get one with Lab.up() or Lab.open(), never construct it directly."""

    def __init__(self, layout: LabLayout, state: LabState) -> None:
        self.layout = layout
        self.state = state

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def up(cls, hosts: int = 3, directory: str | Path | None = None, virt_type: str = "auto") -> Lab:
        """Bring up hosts h1..h<hosts> in `directory` (default: default_lab_dir()).

        Raises LabExistsError if a lab is already there. On any failure, whatever was made is
        removed again before the error propagates. Under a second with the QEMU capabilities
        cache warm, ~5 s the first time on a machine (one QEMU probe).
        """
        layout = LabLayout.of(directory if directory is not None else default_lab_dir())
        bringup.check_can_start(layout, hosts)
        state = LabState(
            hosts=[host_name(i) for i in range(1, hosts + 1)],
            virt_type=resolve_virt_type(virt_type),
            tag=layout.tag,
        )
        layout.directory.mkdir(parents=True, exist_ok=True)
        state.save(layout)  # first, so that `down` can find everything made after this
        try:
            bringup.build(layout, state)
        except BaseException as exc:
            try:
                teardown.down(layout)
            except Exception as cleanup:  # keep the original error; say what is left over
                exc.add_note(f"removing the half-made lab failed too: {cleanup}")
            raise
        return cls(layout, state)

    @classmethod
    def open(cls, directory: str | Path | None = None) -> Lab:
        """Attach to the lab in `directory` (raises LabNotFoundError if there is none)."""
        layout = LabLayout.of(directory if directory is not None else default_lab_dir())
        return cls(layout, LabState.load(layout))

    def down(self) -> None:
        """Remove every process, mount, namespace and file of the lab (0.5-2 s: libvirtd exits slowly)."""
        teardown.down(self.layout)

    def check_clean(self) -> list[str]:
        """What of the lab is still there (empty after a successful down())."""
        return teardown.check_clean(self.layout)

    # ------------------------------------------------------------------ hosts
    @property
    def directory(self) -> Path:
        return self.layout.directory

    @property
    def virt_type(self) -> VirtType:
        return self.state.virt_type

    @property
    def hosts(self) -> list[LabHost]:
        return [self.host(name) for name in self.state.hosts]

    def host(self, name: str) -> LabHost:
        if name not in self.state.hosts:
            raise LabError(f"no host {name!r} in lab {self.directory} (hosts: {', '.join(self.state.hosts)})")
        layout = self.layout
        return LabHost(name, layout.control_uri(name), layout.migration_uri(name), layout.address(name))

    def connect(self, host: str) -> libvirt.virConnect:
        """A new libvirt connection to the host's libvirtd; the caller closes it."""
        return connect(self.host(host).control_uri)

    def host_path(self, host: str, path_in_host: str) -> str:
        """Root-namespace path of the file that `host` sees at `path_in_host`."""
        self.host(host)
        return str(self.layout.host_path(host, path_in_host))

    def exec(
        self, host: str, *cmd: str, check: bool = False, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on the host (its mount, UTS and network namespaces), like ssh would."""
        self.host(host)
        return run([*mountns.enter_command(self.layout, host), *cmd], check=check, timeout=timeout)

    def config_yaml(self, cpus: float = 1.0, memory_mib: int = 1024) -> str:
        """The balancer's config.yaml `hosts:` section for this lab, with a small declared capacity."""
        return config_yaml.render(self.hosts, cpus, memory_mib)

    # ------------------------------------------------------------------ faults
    def libvirtd_pid(self, host: str) -> int | None:
        self.host(host)
        return daemon.pid(self.layout, host)

    def kill_libvirtd(self, host: str) -> None:
        """SIGKILL the host's libvirtd, as a crash would; its guests keep running."""
        self.host(host)
        daemon.kill(self.layout, host)

    def stop_libvirtd(self, host: str) -> None:
        """SIGTERM the host's libvirtd and await its exit; its guests keep running."""
        self.host(host)
        daemon.stop(self.layout, host)

    def start_libvirtd(self, host: str) -> None:
        """Start the host's libvirtd and await it; it reattaches to the guests still running."""
        self.host(host)
        daemon.start(self.layout, host)

    def restart_libvirtd(self, host: str) -> None:
        self.stop_libvirtd(host)
        self.start_libvirtd(host)

    def link_down(self, host: str) -> None:
        """Cut the host's link to the lab bridge: no lab traffic in or out; its socket still works."""
        self.host(host)
        netns.set_link(self.layout, host, up=False)

    def link_up(self, host: str) -> None:
        self.host(host)
        netns.set_link(self.layout, host, up=True)

    # ------------------------------------------------------------------ guests
    def _guest_files(self) -> tuple[str, str, str, Path]:
        """(kernel, initrd, TCG emulator, base image): kernel and initrd copied into the lab once,
        so they stay the same for the lab's whole life even if the shared cache is rebuilt
        meanwhile; the emulator wrapper stays in the cache, where libvirt's cached capabilities
        for it stay valid (see ensure_tcg_emulator)."""
        image = ensure_guest_image(cache_root() / "guest")
        for src, name in ((image.kernel, "vmlinuz"), (image.initrd, "initrd.gz")):
            target = self.layout.guest_dir / name
            if not target.exists():
                tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
                shutil.copyfile(src, tmp)
                tmp.replace(target)
        return (
            str(self.layout.guest_dir / "vmlinuz"),
            str(self.layout.guest_dir / "initrd.gz"),
            str(ensure_tcg_emulator(cache_root() / "guest")),
            image.base,
        )

    def create_guest(
        self,
        name: str,
        host: str,
        memory_mib: int = 128,
        overlay_mib: int = 64,
        dirty_mib_s: int = 8,
        disk_mib_s: int = 1,
        cpu_burn_pct: int = 0,
        disk_window_mib: int = 16,
        console: int = 0,
    ) -> LabGuest:
        """Define (persistent) and start a guest on `host`; returns without waiting for its boot.

        Its disk is /var/lib/libvirt/images/<name>.qcow2 on a 128 MiB raw base, with the first
        overlay_mib MiB written (0x5a) so a block migration has overlay data to copy. The guest
        rewrites dirty_mib_s MiB of RAM and disk_mib_s MiB of its disk window per second and
        burns cpu_burn_pct % of its vCPU. With `console=1`, it runs what guest_command types on its
        console. First heartbeat after ~8 s under TCG.
        """
        self.host(host)
        guest = LabGuest(
            name,
            host,
            memory_mib,
            overlay_mib,
            dirty_mib_s,
            disk_mib_s,
            cpu_burn_pct,
            disk_window_mib,
            self.virt_type,
            bool(console),
        )
        taken = [d.host for d in self.domains() if d.name == name]
        if taken:
            raise LabError(f"a domain named {name!r} exists already on {', '.join(taken)}")
        kernel, initrd, tcg_emulator, base = self._guest_files()
        with connected(self.host(host).control_uri) as conn:
            storage.ensure_base(conn, self.layout, host, base)
            storage.create_overlay(conn, guest)
            if overlay_mib:
                self.exec(
                    host,
                    "qemu-io",
                    "-f",
                    "qcow2",
                    "-c",
                    f"write -P 0x5a 0 {overlay_mib}M",
                    guest.disk_path,
                    check=True,
                )
            emulator = tcg_emulator if guest.virt_type == "qemu" else SYSTEM_EMULATOR
            conn.defineXML(domain_xml(guest, kernel, initrd, emulator)).create()
        return guest

    def delete_guest(self, name: str) -> None:
        """Destroy and undefine the guest wherever it is, and delete its overlay and logs on every
        host (a migration's source keeps them). Base images stay: they are each host's cache."""
        for host in self.state.hosts:
            with connected(self.host(host).control_uri) as conn:
                try:
                    dom = conn.lookupByName(name)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
                else:
                    try:
                        if dom.isActive():
                            dom.destroy()
                        if dom.isPersistent():
                            dom.undefine()
                    except libvirt.libvirtError as exc:  # it left meanwhile (a migration ending)
                        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                            raise
                storage.delete_volume(conn, "images", f"{name}.qcow2")
            for log in (serial_log_path(name), f"/var/log/libvirt/qemu/{name}.log"):
                self.layout.host_path(host, log).unlink(missing_ok=True)

    def guest_command(self, host: str, vm: str, command: str, timeout: float = 30.0) -> None:
        """Type ``command`` on the console of a guest made with ``console`` (as its owner would),
        e.g. ``poweroff``, and await the guest's "ran <command>" there. Goes through libvirt's
        console stream, which needs no domain job, so it works while a migration runs. QEMU notices
        a console opened on its pty only at its next 1 s check and drops what came before, so the
        line is typed again every second until the guest answers."""
        with connected(self.host(host).control_uri) as conn:
            stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
            conn.lookupByName(vm).openConsole(CONSOLE_DEVICE, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
            deadline = time.monotonic() + timeout
            heard, typed_at = b"", 0.0
            try:
                while f"ran {command}".encode() not in heard:
                    now = time.monotonic()
                    if now > deadline:
                        raise LabTimeoutError(f"{vm} on {host} did not run {command!r} within {timeout} s")
                    if now - typed_at >= 1.0:
                        stream.send(f"{command}\n".encode())
                        typed_at = now
                    got = stream.recv(4096)
                    if isinstance(got, bytes) and got:
                        heard += got
                    else:
                        time.sleep(0.05)
            finally:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()

    def domains(self) -> list[LabDomain]:
        """Every domain on every host, as each libvirtd reports it."""
        return [dom for host in self.state.hosts for dom in self.host_domains(host)]

    def host_domains(self, host: str) -> list[LabDomain]:
        """The domains one host's libvirtd reports (libvirtError if it is down).

        A domain that vanishes between the listing and its state (a migration that ends, as one a
        killed client left running in libvirtd does, undefines its source) is not on the host: it
        is left out, not reported as the whole host failing.
        """
        found = []
        with connected(self.host(host).control_uri) as conn:
            for dom in conn.listAllDomains(0):
                try:
                    state, persistent = dom.state()[0], bool(dom.isPersistent())
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
                    continue
                found.append(LabDomain(host, dom.name(), _STATE_NAMES.get(state, "unknown"), persistent))
        return found

    def heartbeat(self, host: str, vm: str) -> int | None:
        """The last `HB <n>` the guest printed while running on `host`, or None."""
        return serial.last_heartbeat(Path(self.host_path(host, serial_log_path(vm))))

    def wait_heartbeat(self, host: str, vm: str, after: int | None = None, timeout: float = 60.0) -> int:
        """Await a heartbeat on `host` (greater than `after`, if given) and return it."""
        deadline = time.monotonic() + timeout
        while True:
            beat = self.heartbeat(host, vm)
            if beat is not None and (after is None or beat > after):
                return beat
            if time.monotonic() > deadline:
                log = Path(self.host_path(host, serial_log_path(vm)))
                raise LabTimeoutError(
                    f"no heartbeat of {vm} on {host} above {after} within {timeout} s "
                    f"(last {beat}); end of {log}:\n{serial.tail(log)}"
                )
            time.sleep(0.2)

    def rebooted(self, host: str, vm: str) -> bool:
        """True if the guest booted on `host` (its banner is in that host's log), i.e. it was
        started or restarted there rather than live-migrated in."""
        return serial.saw_boot(Path(self.host_path(host, serial_log_path(vm))))

    def guest_trouble(self, host: str, vm: str) -> list[str]:
        """Lines where the guest's kernel reported trouble (an OOM kill, oops, panic, ...) while it
        ran on `host`; empty for a healthy guest."""
        return serial.kernel_trouble(Path(self.host_path(host, serial_log_path(vm))))

    def wait_live_arrival(self, host: str, vm: str, after: int, timeout: float = 30.0) -> int:
        """Await a heartbeat above `after` on `host`, where a live migration brought the guest, and
        prove it arrived live and healthy: no boot banner in that host's log (it did not restart
        there) and no kernel trouble. Returns the heartbeat; LabError with the log's end if not."""
        beat = self.wait_heartbeat(host, vm, after=after, timeout=timeout)
        log = Path(self.host_path(host, serial_log_path(vm)))
        problems = [f"kernel: {line}" for line in self.guest_trouble(host, vm)]
        if self.rebooted(host, vm):
            problems.insert(0, "it booted there (a restart, not a live arrival)")
        if problems:
            raise LabError(f"{vm} on {host}: " + "; ".join(problems) + f"; end of {log}:\n{serial.tail(log)}")
        return beat

    def disk_checksum(self, host: str, vm_or_path: str, skip_mib: int = 0) -> str:
        """SHA-256 of the guest-visible disk content (the whole backing chain, as raw bytes) from
        byte offset skip_mib MiB to the end, read on `host` with qemu-img's force-share (-U).

        `vm_or_path` is a guest name (its /var/lib/libvirt/images/<vm>.qcow2) or an in-host path.
        While the guest runs it keeps writing inside its first disk_window_mib MiB, so pass
        skip_mib=guest.disk_window_mib to get a value that is stable while it runs; for the whole
        disk, pause the guest (or use the source's file a migration left behind).
        """
        path = vm_or_path if vm_or_path.startswith("/") else f"/var/lib/libvirt/images/{vm_or_path}.qcow2"
        raw = self.layout.tmp_dir / f"checksum-{uuid.uuid4().hex}.raw"  # same path in every host
        try:
            self.exec(host, "qemu-img", "convert", "-U", "-O", "raw", path, str(raw), check=True)
            digest = hashlib.sha256()
            with open(raw, "rb") as handle:
                handle.seek(skip_mib << 20)
                while chunk := handle.read(4 << 20):
                    digest.update(chunk)
            return digest.hexdigest()
        finally:
            raw.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"Lab({str(self.directory)!r}, hosts={self.state.hosts}, virt_type={self.virt_type!r})"
