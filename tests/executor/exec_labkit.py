"""Helpers for the executor's lab tests: endpoints, a runner with recorded events, awaited conditions."""

from __future__ import annotations

import functools
import hashlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import Event, Progress, StateChanged
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.libvirt_hypervisor import libvirt_factory
from balancer.executor.runner import Runner
from balancer.lab import Lab
from balancer.lab.layout import cache_root
from balancer.model import MoveState
from balancer.store import Store
from tests.leader import HOLDER, journal_of
from tests.waiting import wait_for as wait_for  # re-exported: the tests here import it from this kit

BASE = "/var/lib/libvirt/base/labguest-base.raw"
MIB = 1 << 20

# Quiet guests for tests that time phases or inject faults: without RAM/disk dirtying their migrations
# take a predictable time on a busy 2-core machine. (RAM-dirtying guests used to crash after some
# migrations while the lab gave them a virtio balloon; the lab's guests have none now, and
# test_incremental_with_base_on_target migrates a guest under its default load.)
CALM = {"dirty_mib_s": 0, "disk_mib_s": 0}


def endpoints(lab: Lab) -> dict[str, MigrationEndpoint]:
    return {h.name: MigrationEndpoint(h.name, h.control_uri, h.migration_uri) for h in lab.hosts}


@dataclass
class Recorder:
    """An EventSink that keeps everything, thread-safe."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.events.append((time.monotonic(), event))

    def progress(self, record_id: str) -> list[tuple[float, Progress]]:
        with self.lock:
            return [(t, e) for t, e in self.events if isinstance(e, Progress) and e.record_id == record_id]

    def states(self, record_id: str) -> list[tuple[float, MoveState]]:
        with self.lock:
            return [
                (t, e.record.state)
                for t, e in self.events
                if isinstance(e, StateChanged) and e.record.id == record_id
            ]


def make_runner(
    lab: Lab, store: Store, args: ExecutorArgs | None = None, limits: LimitArgs | None = None
) -> tuple[Runner, Recorder]:
    rec = Recorder()
    eps = endpoints(lab)
    args = args or ExecutorArgs(memory_headroom_mib=64, settle_seconds=20)
    return Runner(args, limits or LimitArgs(), libvirt_factory(eps), journal_of(store), eps, rec), rec


def copies(lab: Lab, vm: str) -> list[tuple[str, str]]:
    """(host, state) of every domain named ``vm`` on reachable hosts."""
    out = []
    for h in lab.hosts:
        try:
            out += [(d.host, d.state) for d in lab.host_domains(h.name) if d.name == vm]
        except libvirt.libvirtError as exc:
            out.append((h.name, f"unreachable: {exc.get_error_code()} {exc}"))
    return out


def running_on(lab: Lab, vm: str) -> list[str]:
    return [h for h, s in copies(lab, vm) if s == "running"]


def ensure_base(lab: Lab, host: str, present: bool) -> None:
    """Put the base image on ``host`` like an image cache would, or remove it (only if nothing uses it)."""
    conn = lab.connect(host)
    try:
        pool = conn.storagePoolLookupByName("base")
        pool.refresh(0)
        has = "labguest-base.raw" in pool.listVolumes()
        if present and not has:
            donors = [h.name for h in lab.hosts if os.path.exists(lab.host_path(h.name, BASE))]
            assert donors, "no host has the base yet: create a guest first"
            shutil.copyfile(lab.host_path(donors[0], BASE), lab.host_path(host, BASE))
            pool.refresh(0)
        elif not present and has:
            assert not lab.host_domains(host), f"{host} has domains; not removing its base"
            images = conn.storagePoolLookupByName("images")
            images.refresh(0)
            assert not images.listVolumes(), f"{host} still has images: {images.listVolumes()}"
            pool.storageVolLookupByName("labguest-base.raw").delete(0)
    finally:
        conn.close()


@functools.cache
def _sha256_of(path: str, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_file(path: str) -> str:
    """sha256 of a file, read again only when its size or modification time changed."""
    st = os.stat(path)
    return _sha256_of(path, st.st_mtime_ns, st.st_size)


@functools.cache
def base_sha256() -> str:
    """sha256 of the lab's base image as every complete copy of it reads (the lab's cached original)."""
    return _sha256_file(str(cache_root() / "guest" / "base.raw"))


def partial_bases(lab: Lab) -> list[str]:
    """Hosts holding a base image that is not a complete copy of the original (read in the root
    namespace, which sees every host's files)."""
    out = []
    for h in lab.hosts:
        path = lab.host_path(h.name, BASE)
        if os.path.exists(path) and _sha256_file(path) != base_sha256():
            out.append(h.name)
    return out


def target_leftovers(lab: Lab, store: Store, host: str, vm: str) -> list[str]:
    """What a move of ``vm`` could have left on ``host``, which does not run it: a domain, the VM's
    disk, a base that is not complete, volumes the ledger still lists as unproven."""
    out = []
    conn = lab.connect(host)
    try:
        images = conn.storagePoolLookupByName("images")
        images.refresh(0)
        if f"{vm}.qcow2" in images.listVolumes():
            out.append(f"volume images/{vm}.qcow2")
        out += [f"domain {d.name()}" for d in conn.listAllDomains(0) if d.name() == vm]
    finally:
        conn.close()
    base = lab.host_path(host, BASE)
    if os.path.exists(base) and _sha256_file(base) != base_sha256():
        out.append(f"incomplete {BASE}")
    out += [f"ledger: {v.path} ({v.state})" for v in store.target_volumes(host=host, state="provisional")]
    return out


class CrashChild:
    """A move run by exec_crashchild.py in its own process, to be SIGKILLed at a chosen point."""

    def __init__(
        self, lab: Lab, store_url: str, vm: str, src: str, dst: str, cap: int, verify: str = "sha256"
    ) -> None:
        with Store.open(store_url) as store:  # the test's own term ends: the child leads now
            store.release_lease(HOLDER)
        script = Path(__file__).with_name("exec_crashchild.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(lab.directory), store_url, vm, src, dst, str(cap), verify],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []  # every line read so far
        threading.Thread(target=self._read, daemon=True).start()
        self.record_id = ""
        while not self.record_id:
            line = self._next(60)
            if line is None:
                raise AssertionError(f"the child exited before naming its record: {self.seen}")
            if " " not in line:
                self.record_id = line

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _next(self, timeout: float) -> str | None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the child said nothing for {timeout} s; last: {self.seen[-5:]}") from None
        if line is not None:
            self.seen.append(line)
        return line

    def wait_point(self, point: Callable[[str, int], bool], timeout: float) -> bool:
        """Read the child's lines until ``point(phase, bytes)`` holds for a progress line (True), or
        the move ends or the child exits first (False)."""
        deadline = time.monotonic() + timeout
        while (line := self._next(max(0.1, deadline - time.monotonic()))) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no kill point within {timeout} s; last: {self.seen[-5:]}")
            kind, _, rest = line.partition(" ")
            if kind == "S" and MoveState(rest).final:
                return False
            if kind == "P":
                phase, n = rest.split()
                if point(phase, int(n)):
                    return True
        return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
