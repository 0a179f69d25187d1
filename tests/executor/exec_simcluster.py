"""An in-process cluster implementing the executor's Hypervisor Protocol, for fast runner tests.

Not a mock: a small second implementation of the seam (like the simulator will be). Migrations
take real (short) time, report job stats, honour abortJob and end by moving the domain.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from balancer.errors import MigrationError
from balancer.executor.convergence import JobSample
from balancer.executor.facts import (
    ChainLink,
    DiskFacts,
    DomainFacts,
    MigrationRequest,
    NodeFacts,
    PoolFacts,
    VolumeFacts,
)

MIB = 1 << 20
BASE = "/var/lib/libvirt/base/base.raw"
IMAGES = "/var/lib/libvirt/images"


@dataclass
class SimVolume:
    facts: VolumeFacts
    data: bytes = b""


@dataclass
class SimHost:
    name: str
    free_memory: int = 8 << 30
    up: bool = True
    pools: dict[str, PoolFacts] = field(default_factory=dict)
    volumes: dict[str, SimVolume] = field(default_factory=dict)
    domains: dict[str, DomainFacts] = field(default_factory=dict)  # by uuid


@dataclass
class Behaviour:
    """How the next migrations go: seconds they take, and whether they fail at the end."""

    seconds: float = 0.4
    fail_with: str | None = None
    hang: bool = False  # never finishes on its own (stall / no progress)
    short_writes: bool = False  # volume uploads store only half of what they are sent
    read_seconds: float = 0.0  # how long a volume download takes
    lookup_seconds: float = 0.0  # how long a volume look-up takes


class SimCluster:
    def __init__(self, hosts: Iterable[str] = ("h1", "h2", "h3")) -> None:
        self.hosts = {h: SimHost(h) for h in hosts}
        self.lock = threading.RLock()
        self.behaviour = Behaviour()
        self.log: list[tuple[str, str, str, float, float]] = []  # vm, source, target, start, end
        self.reads: Counter[tuple[str, str]] = Counter()  # (host, path) -> volume downloads
        self.jobs: dict[str, dict[str, float]] = {}  # uuid -> {start, seconds, aborted}
        self.mtimes = 0
        for h in self.hosts.values():
            h.pools["images"] = PoolFacts("images", IMAGES, 100 << 30)
            h.pools["base"] = PoolFacts("base", os.path.dirname(BASE), 100 << 30)
            self.add_volume(h.name, BASE, b"B" * (4 * MIB), "raw")

    def add_volume(
        self, host: str, path: str, data: bytes, fmt: str, backing: ChainLink | None = None
    ) -> None:
        pool = next(p.name for p in self.hosts[host].pools.values() if p.path == os.path.dirname(path))
        vf = VolumeFacts(
            path, os.path.basename(path), pool, len(data), len(data), len(data), fmt, backing, self.tick()
        )
        self.hosts[host].volumes[path] = SimVolume(vf, data)

    def tick(self) -> str:
        """A fresh modification time (as libvirt's "seconds.nanoseconds"), later than every earlier one."""
        with self.lock:
            self.mtimes += 1
            return f"{self.mtimes}.000000000"

    def add_vm(self, name: str, host: str, memory_mib: int = 128, backing: bool = True) -> DomainFacts:
        path = f"{IMAGES}/{name}.qcow2"
        chain = (ChainLink(BASE, "raw"),) if backing else ()
        self.add_volume(host, path, b"O" * MIB, "qcow2", chain[0] if chain else None)
        dom = DomainFacts(
            name,
            f"00000000-0000-0000-0000-{abs(hash(name)) % 10**12:012d}",
            "running",
            True,
            memory_mib * MIB,
            False,
            (DiskFacts("vda", path, "qcow2", backing=chain),),
        )
        self.hosts[host].domains[dom.uuid] = dom
        return dom

    def where(self, name: str) -> list[tuple[str, str]]:
        with self.lock:
            return [
                (h.name, d.state) for h in self.hosts.values() for d in h.domains.values() if d.name == name
            ]

    def hypervisor(self, name: str) -> SimHypervisor:
        if name not in self.hosts:
            raise KeyError(name)
        return SimHypervisor(self, name)


class SimHypervisor:
    def __init__(self, cluster: SimCluster, name: str) -> None:
        self.c, self.name = cluster, name

    @property
    def h(self) -> SimHost:
        host = self.c.hosts[self.name]
        if not host.up:
            raise MigrationError(
                38, 7, f"Cannot recv data: connection to {self.name} closed", f"call {self.name}", self.name
            )
        return host

    def _find(self, ref: str) -> DomainFacts | None:
        for d in self.h.domains.values():
            if ref in (d.uuid, d.name):
                return d
        return None

    def node(self) -> NodeFacts:
        return NodeFacts("QEMU", 7_002_000, 9_000_000, self.h.free_memory, "qemu64")

    def domain(self, name_or_uuid: str) -> DomainFacts | None:
        with self.c.lock:
            d = self._find(name_or_uuid)
            return (
                None if d is None else replace(d, job_active=d.uuid in self.c.jobs and d.state == "running")
            )

    def cpu_compatible(self, dom: DomainFacts) -> bool:
        return True

    def pools(self) -> list[PoolFacts]:
        return list(self.h.pools.values())

    def volume(self, path: str) -> VolumeFacts | None:
        time.sleep(self.c.behaviour.lookup_seconds)
        v = self.h.volumes.get(path)
        return None if v is None else v.facts

    def volumes_backed_by(self, path: str) -> list[str]:
        return [p for p, v in self.h.volumes.items() if v.facts.backing and v.facts.backing.path == path]

    def paths_in_use(self) -> set[str]:
        return {
            p
            for d in self.h.domains.values()
            for x in d.disks
            for p in (x.path, *(b.path for b in x.backing))
        }

    def create_volume(
        self, pool: str, name: str, capacity: int, fmt: str, backing: ChainLink | None
    ) -> VolumeFacts:
        path = os.path.join(self.h.pools[pool].path, name)
        if path in self.h.volumes:
            raise MigrationError(90, 18, f"storage volume '{name}' exists already", "create")
        self.c.add_volume(self.name, path, b"\0" * capacity, fmt, backing)
        return self.h.volumes[path].facts

    def delete_volume(self, path: str) -> None:
        if self.h.volumes.pop(path, None) is None:
            raise MigrationError(50, 18, f"no storage vol with matching path '{path}'", "delete")

    def read_volume(self, path: str, length: int) -> Iterator[bytes]:
        data = self.h.volumes[path].data[:length]
        self.c.reads[(self.name, path)] += 1
        time.sleep(self.c.behaviour.read_seconds)
        for i in range(0, len(data), MIB):
            yield data[i : i + MIB]

    def write_volume(self, path: str, chunks: Iterable[bytes], length: int) -> int:
        data = b"".join(chunks)
        if self.c.behaviour.short_writes:
            data = data[: len(data) // 2]
        v = self.h.volumes[path]
        v.data = data
        v.facts = replace(v.facts, mtime=self.c.tick())
        return len(data)

    def digest(self, path: str) -> str:
        return hashlib.sha256(self.h.volumes[path].data).hexdigest()

    # -- migration ---------------------------------------------------------------
    def migrate(self, dom: str, request: MigrationRequest) -> None:
        target = request.dest_uri.split("//")[1].split("/")[0]
        b = self.c.behaviour
        with self.c.lock:
            d = self._find(dom)
            assert d is not None
            job = {"start": time.monotonic(), "seconds": b.seconds, "aborted": 0.0}
            self.c.jobs[d.uuid] = job
        start = time.monotonic()
        try:
            while b.hang or time.monotonic() - start < b.seconds:
                if job["aborted"]:
                    raise MigrationError(
                        78, 10, "operation aborted: migration out: canceled by client", "migrate"
                    )
                if not self.c.hosts[self.name].up:
                    raise MigrationError(1, 10, "internal error: client socket is closed", "migrate")
                time.sleep(0.02)
            if b.fail_with:
                raise MigrationError(9, 10, b.fail_with, "migrate")
            with self.c.lock:
                dst = self.c.hosts[target]
                if request.copy == "full":  # the whole chain lands in the flat target volume
                    d = replace(d, disks=tuple(replace(x, backing=()) for x in d.disks))
                dst.domains[d.uuid] = replace(d, job_active=False)
                del self.h.domains[d.uuid]  # UNDEFINE_SOURCE
        finally:
            with self.c.lock:
                self.c.jobs.pop(d.uuid, None)
                self.c.log.append((d.name, self.name, target, start, time.monotonic()))

    def job_stats(self, dom: str, now: float) -> JobSample | None:
        with self.c.lock:
            d = self._find(dom)
            job = self.c.jobs.get(d.uuid) if d else None
            if job is None:
                return None
            frac = (
                0.0 if self.c.behaviour.hang else min(1.0, (time.monotonic() - job["start"]) / job["seconds"])
            )
            total = 100 * MIB
            done = int(total * frac)
            return JobSample(
                t=now,
                data_total=total,
                data_processed=done,
                data_remaining=total - done,
                disk_processed=done,
                disk_total=total,
            )

    def completed_stats(self, dom: str) -> dict[str, int]:
        return {"downtime": 42, "memory_processed": 10 * MIB}

    def abort_job(self, dom: str) -> None:
        with self.c.lock:
            d = self._find(dom)
            if d is None or d.uuid not in self.c.jobs:
                raise MigrationError(55, 10, "Requested operation is not valid: no job is active", "abort")
            self.c.jobs[d.uuid]["aborted"] = 1.0

    def set_max_downtime(self, dom: str, ms: int) -> None:
        pass

    def start_post_copy(self, dom: str) -> None:
        pass

    def close(self) -> None:
        pass
