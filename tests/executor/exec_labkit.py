"""Helpers for the executor's lab tests: endpoints, a runner with recorded events, awaited conditions."""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field

import libvirt

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import Event, Progress, StateChanged
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.hypervisor import libvirt_factory
from balancer.executor.runner import Runner
from balancer.lab import Lab
from balancer.model import MoveState
from balancer.store import Store
from tests.leader import journal_of
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
        except libvirt.libvirtError:
            out.append((h.name, "unreachable"))
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
