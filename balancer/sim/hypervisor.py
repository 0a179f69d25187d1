"""SimHypervisor: the executor's Hypervisor seam over simulated in-memory hosts, a second real implementation.

Not a mock: a small host model that keeps the promises written on ``executor/hypervisor.py``. Domains
are :class:`DomainFacts` values, volumes carry their bytes, pools their free space; migrations move the
domain from one host to the other at their end (VIR_MIGRATE_UNDEFINE_SOURCE), report job stats on the
way and honour ``abort_job``. Failures raise ``MigrationError`` with libvirt's code, domain and a
libvirt-like message, and ``host`` set to the host the call went to, as ``LibvirtHypervisor`` does.

Two users:

* the executor's unit tests drive the real Runner, pre-checks, provisioning, cleanup and recovery on
  it; migrations take wall-clock time (``Faults.seconds``) because the Runner's threads poll them;
* the day-long simulator (``sim/executor.py``) runs the executor's real pre-checks on it, over views
  of its array cluster built by ``sim/hosts.py`` (it never calls ``migrate``: migrations there last
  bytes ÷ cap in simulated time).

The simulator's fault model (:class:`Faults`, shared by every host of a :class:`SimHosts`; changes take
effect on the next call): how long migrations, volume downloads and look-ups take; a migration that
fails at its end with a given message, or never ends on its own (a stall the executor must abort);
volume uploads that store only half of what they are sent. A host with ``SimHost.up`` False answers
no call (libvirt's VIR_ERR_SYSTEM_ERROR "Cannot recv data"), and a migration whose source goes down
fails (VIR_ERR_INTERNAL_ERROR).
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
# libvirt's error codes and domains (virErrorNumber, virErrorDomain) the simulated hosts report
ERR_INTERNAL, ERR_SYSTEM, ERR_OPERATION_FAILED = 1, 38, 9
ERR_NO_STORAGE_VOL, ERR_OPERATION_INVALID, ERR_OPERATION_ABORTED, ERR_STORAGE_VOL_EXIST = 50, 55, 78, 90
FROM_RPC, FROM_QEMU, FROM_STORAGE = 7, 10, 18
HYPERVISOR = ("QEMU", 7_002_000, 9_000_000)  # type, version (7.2.0), libvirt version (9.0.0)


@dataclass
class SimVolume:
    facts: VolumeFacts
    data: bytes = b""


@dataclass
class SimHost:
    """One simulated host as its libvirtd would describe it."""

    name: str
    free_memory: int = 8 << 30
    up: bool = True
    pools: dict[str, PoolFacts] = field(default_factory=dict)
    volumes: dict[str, SimVolume] = field(default_factory=dict)  # by path
    domains: dict[str, DomainFacts] = field(default_factory=dict)  # by uuid
    cpu_model: str = "qemu64"


@dataclass
class Faults:
    """The simulator's fault model: how the next calls go (wall-clock seconds)."""

    seconds: float = 0.4  # a migration's duration
    fail_with: str | None = None  # a migration fails at its end with this message
    hang: bool = False  # a migration never finishes on its own (stall / no progress)
    short_writes: bool = False  # volume uploads store only half of what they are sent
    read_seconds: float = 0.0  # how long a volume download takes
    lookup_seconds: float = 0.0  # how long a volume look-up takes


class SimHosts:
    """A set of simulated hosts, their running migration jobs and what happened (for assertions)."""

    def __init__(self, hosts: Iterable[SimHost]) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.lock = threading.RLock()
        self.faults = Faults()
        self.log: list[tuple[str, str, str, float, float]] = []  # vm, source, target, start, end
        self.reads: Counter[tuple[str, str]] = Counter()  # (host, path) -> volume downloads
        self.jobs: dict[str, dict[str, float]] = {}  # uuid -> {start, seconds, aborted}
        self.mtimes = 0

    @classmethod
    def small(cls, names: Iterable[str] = ("h1", "h2", "h3")) -> SimHosts:
        """Hosts with an ``images`` pool and a ``base`` pool holding the same 4 MiB raw base image
        (``BASE``), 100 GiB free each: what :meth:`add_vm` builds on."""
        hosts = cls(SimHost(n) for n in names)
        for h in hosts.hosts.values():
            h.pools["images"] = PoolFacts("images", IMAGES, 100 << 30)
            h.pools["base"] = PoolFacts("base", os.path.dirname(BASE), 100 << 30)
            hosts.add_volume(h.name, BASE, b"B" * (4 * MIB), "raw")
        return hosts

    def add_volume(
        self, host: str, path: str, data: bytes, fmt: str, backing: ChainLink | None = None
    ) -> None:
        """Put a volume holding ``data`` in the pool of ``host`` whose directory holds ``path``."""
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
        """A running VM with one 1 MiB qcow2 overlay in ``images`` (over ``BASE`` unless ``backing`` is
        False); its UUID is derived from its name."""
        path = f"{IMAGES}/{name}.qcow2"
        chain = (ChainLink(BASE, "raw"),) if backing else ()
        self.add_volume(host, path, b"O" * MIB, "qcow2", chain[0] if chain else None)
        digits = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10**12
        dom = DomainFacts(
            name,
            f"00000000-0000-0000-0000-{digits:012d}",
            "running",
            True,
            memory_mib * MIB,
            False,
            (DiskFacts("vda", path, "qcow2", backing=chain),),
        )
        self.hosts[host].domains[dom.uuid] = dom
        return dom

    def where(self, name: str) -> list[tuple[str, str]]:
        """(host, state) of every definition of the domain called ``name``."""
        with self.lock:
            return [
                (h.name, d.state) for h in self.hosts.values() for d in h.domains.values() if d.name == name
            ]

    def digest(self, host: str, path: str) -> str:
        """SHA-256 of the bytes of volume ``path`` on ``host``, as a checksum of the file would read."""
        return hashlib.sha256(self.hosts[host].volumes[path].data).hexdigest()

    def hypervisor(self, name: str) -> SimHypervisor:
        """The hypervisor of host ``name`` (a HypervisorFactory)."""
        if name not in self.hosts:
            raise KeyError(name)
        return SimHypervisor(self, name)


class SimHypervisor:
    """One host of a :class:`SimHosts`, through the executor's Hypervisor Protocol."""

    def __init__(self, hosts: SimHosts, name: str) -> None:
        self.c, self.name = hosts, name

    @property
    def h(self) -> SimHost:
        host = self.c.hosts[self.name]
        if not host.up:
            raise MigrationError(
                ERR_SYSTEM,
                FROM_RPC,
                f"Cannot recv data: connection to {self.name} closed",
                f"call {self.name}",
                self.name,
            )
        return host

    def _error(self, code: int, domain: int, message: str, operation: str) -> MigrationError:
        return MigrationError(code, domain, message, f"{operation} on {self.name}", self.name)

    def _find(self, ref: str) -> DomainFacts | None:
        for d in self.h.domains.values():
            if ref in (d.uuid, d.name):
                return d
        return None

    def _vol(self, path: str, operation: str) -> SimVolume:
        v = self.h.volumes.get(path)
        if v is None:
            msg = f"Storage volume not found: no storage vol with matching path '{path}'"
            raise self._error(ERR_NO_STORAGE_VOL, FROM_STORAGE, msg, f"{operation} {path}")
        return v

    # -- host and domains ------------------------------------------------------------
    def node(self) -> NodeFacts:
        return NodeFacts(*HYPERVISOR, self.h.free_memory, self.h.cpu_model)

    def domain(self, name_or_uuid: str) -> DomainFacts | None:
        with self.c.lock:
            d = self._find(name_or_uuid)
            if d is None:
                return None
            return replace(d, job_active=(d.job_active or d.uuid in self.c.jobs) and d.state == "running")

    def cpu_compatible(self, dom: DomainFacts) -> bool:
        return True  # every simulated host has the same CPU

    # -- storage --------------------------------------------------------------------
    def pools(self) -> list[PoolFacts]:
        return list(self.h.pools.values())

    def volume(self, path: str) -> VolumeFacts | None:
        time.sleep(self.c.faults.lookup_seconds)  # the fault model's slow look-up, not a synchronisation
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
            msg = f"storage volume '{name}' exists already"
            raise self._error(ERR_STORAGE_VOL_EXIST, FROM_STORAGE, msg, f"create volume {name}")
        self.c.add_volume(self.name, path, b"\0" * capacity, fmt, backing)
        return self.h.volumes[path].facts

    def delete_volume(self, path: str) -> None:
        self._vol(path, "delete volume")
        del self.h.volumes[path]

    def read_volume(self, path: str, length: int) -> Iterator[bytes]:
        data = self._vol(path, "download").data[:length]
        self.c.reads[(self.name, path)] += 1
        time.sleep(self.c.faults.read_seconds)  # the fault model's slow download
        for i in range(0, len(data), MIB):
            yield data[i : i + MIB]

    def write_volume(self, path: str, chunks: Iterable[bytes], length: int) -> int:
        v = self._vol(path, "upload")
        data = b"".join(chunks)
        if self.c.faults.short_writes:
            data = data[: len(data) // 2]
        v.data = data
        v.facts = replace(v.facts, mtime=self.c.tick())
        return len(data)

    # -- migration ---------------------------------------------------------------
    def migrate(self, dom: str, request: MigrationRequest) -> None:
        target = request.dest_uri.split("//")[1].split("/")[0]
        f = self.c.faults
        op = f"migrate {dom} to {target}"
        with self.c.lock:
            d = self._find(dom)
            if d is None:
                raise self._error(42, FROM_QEMU, f"Domain not found: no domain with name '{dom}'", op)
            job = {"start": time.monotonic(), "seconds": f.seconds, "aborted": 0.0}
            self.c.jobs[d.uuid] = job
        start = time.monotonic()
        try:
            # a blocking call emulated in wall-clock time: re-check abort and the host every 20 ms
            while f.hang or time.monotonic() - start < f.seconds:
                if job["aborted"]:
                    msg = "operation aborted: migration out: canceled by client"
                    raise self._error(ERR_OPERATION_ABORTED, FROM_QEMU, msg, op)
                if not self.c.hosts[self.name].up:
                    raise self._error(ERR_INTERNAL, FROM_QEMU, "internal error: client socket is closed", op)
                time.sleep(0.02)
            if f.fail_with:
                raise self._error(ERR_OPERATION_FAILED, FROM_QEMU, f.fail_with, op)
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
        """Progress as a straight line over ``Faults.seconds`` of 100 MiB of disk (none while hanging)."""
        with self.c.lock:
            d = self._find(dom)
            job = self.c.jobs.get(d.uuid) if d else None
            if job is None:
                return None
            frac = 0.0 if self.c.faults.hang else min(1.0, (time.monotonic() - job["start"]) / job["seconds"])
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
                msg = "Requested operation is not valid: no job is active on the domain"
                raise self._error(ERR_OPERATION_INVALID, FROM_QEMU, msg, f"abort job of {dom}")
            self.c.jobs[d.uuid]["aborted"] = 1.0

    def set_max_downtime(self, dom: str, ms: int) -> None:
        pass  # simulated migrations converge by time alone

    def start_post_copy(self, dom: str) -> None:
        pass

    def close(self) -> None:
        pass  # no connection to release
