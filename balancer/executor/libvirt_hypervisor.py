"""The executor's Hypervisor seam over libvirt-python: the lab's hosts, or libvirt's ``test:///`` driver.

Each method's promise, libvirt call and error mapping is written on the Protocol in
``executor/hypervisor.py``. This is the only module of the executor that catches
``libvirt.libvirtError``; every failure leaves as ``MigrationError(code, domain, message, operation,
host)`` with the libvirt error chained (``from exc``).
Nothing here powers off, destroys or undefines a domain: the only definition that ever goes away is
the source's, removed by libvirt itself under VIR_MIGRATE_UNDEFINE_SOURCE after a completed migration.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any

import libvirt

from balancer.errors import MigrationError
from balancer.executor.convergence import JobSample
from balancer.executor.facts import (
    ChainLink,
    DomainFacts,
    MigrationEndpoint,
    MigrationRequest,
    NodeFacts,
    PoolFacts,
    VolumeFacts,
)
from balancer.executor.hypervisor import Hypervisor, HypervisorFactory
from balancer.executor.xmlfacts import domain_facts, volume_backing, volume_format, volume_mtime, volume_xml

CHUNK = 1 << 20
NO_DOMAIN = libvirt.VIR_ERR_NO_DOMAIN
NO_VOLUME = libvirt.VIR_ERR_NO_STORAGE_VOL
_STATE = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

# libvirt's reason for a domain's state (virDomainShutoffReason, virDomainPausedReason, ...), by state.
_REASONS: dict[int, tuple[str, ...]] = {
    libvirt.VIR_DOMAIN_RUNNING: (
        "unknown", "booted", "migrated", "restored", "from snapshot", "unpaused",
        "migration canceled", "save canceled", "wakeup", "crashed", "postcopy", "postcopy failed",
    ),
    libvirt.VIR_DOMAIN_PAUSED: (
        "unknown", "user", "migration", "save", "dump", "ioerror", "watchdog", "from snapshot",
        "shutting down", "snapshot", "crashed", "starting up", "postcopy", "postcopy failed",
    ),
    libvirt.VIR_DOMAIN_SHUTOFF: (
        "unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot",
        "daemon",
    ),
    libvirt.VIR_DOMAIN_CRASHED: ("unknown", "panicked"),
}  # fmt: skip

# libvirt's error handler is process-wide: service/libvirt_process.py registers it where a process starts.


@contextmanager
def _mapped(operation: str, host: str) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise MigrationError(
            exc.get_error_code() or 0,
            exc.get_error_domain() or 0,
            exc.get_error_message() or str(exc),
            operation,
            host,
        ) from exc


def _refresh(pool: libvirt.virStoragePool) -> None:
    """Refresh a pool's sizes. libvirt refuses while it builds, clones or wipes a volume of the
    pool (such as another move creating its overlay there), with an internal error "pool '...' has
    asynchronous jobs running" (an open upload or download stream does not cause it: tried on the
    lab). Then the sizes libvirt last computed stand (it keeps them current for the volumes it
    creates and deletes itself), rather than failing the pre-check of a move that only shares the
    host (seen in CI when one move's overlay was created on a host another move was leaving)."""
    try:
        pool.refresh(0)
    except libvirt.libvirtError as exc:
        if "has asynchronous jobs running" not in (exc.get_error_message() or ""):
            raise


def _has_job(dom: libvirt.virDomain) -> bool:
    """Whether a job (a migration, a save...) runs on ``dom``.

    A driver without job support (libvirt's test driver) can run no job we could collide with: that
    is "no job", not a failed host.
    """
    try:
        return bool(dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return False
        raise


def migration_flags(req: MigrationRequest) -> int:
    """Nova's block-migration flags plus the disk copy kind and the optional extras."""
    flags = (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PEER2PEER
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    if req.disks:
        flags |= (
            libvirt.VIR_MIGRATE_NON_SHARED_INC
            if req.copy == "incremental"
            else libvirt.VIR_MIGRATE_NON_SHARED_DISK
        )
    if req.tls:
        flags |= libvirt.VIR_MIGRATE_TLS
    if req.auto_converge:
        flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    if req.post_copy:
        flags |= libvirt.VIR_MIGRATE_POSTCOPY
    return flags


def migration_params(req: MigrationRequest) -> dict[str, Any]:
    params: dict[str, Any] = {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: int(req.bandwidth_mib_s)}
    if req.disks:
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(req.disks)
    params.update(req.extra)
    return params


class LibvirtHypervisor:
    """A host reached through libvirt-python; reconnects when its connection has died."""

    def __init__(self, endpoint: MigrationEndpoint, keepalive: tuple[int, int] = (5, 3)) -> None:
        self.name = endpoint.name
        self.endpoint = endpoint
        self._keepalive = keepalive
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------
    def _open(self) -> libvirt.virConnect:
        with _mapped(f"connect {self.name} ({self.endpoint.uri})", self.name):
            conn = libvirt.open(self.endpoint.uri)
        with suppress(libvirt.libvirtError):  # local (unix socket, test://) connections may not keepalive
            conn.setKeepAlive(*self._keepalive)
        return conn

    def _c(self) -> libvirt.virConnect:
        with self._lock:
            if self._conn is not None:
                try:
                    alive = self._conn.isAlive() == 1
                except libvirt.libvirtError:
                    alive = False
                if not alive:
                    self._drop()
            if self._conn is None:
                self._conn = self._open()
            return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(libvirt.libvirtError):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _dom(self, conn: libvirt.virConnect, ref: str) -> libvirt.virDomain:
        if len(ref) == 36 and ref.count("-") == 4:
            try:
                return conn.lookupByUUIDString(ref)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != NO_DOMAIN:
                    raise
        return conn.lookupByName(ref)

    # -- host and domains ------------------------------------------------------------
    def node(self) -> NodeFacts:
        conn = self._c()
        with _mapped(f"node info of {self.name}", self.name):
            caps = ET.fromstring(conn.getCapabilities())
            model = caps.findtext("host/cpu/model") or ""
            return NodeFacts(
                hypervisor_type=conn.getType(),
                hypervisor_version=conn.getVersion(),
                libvirt_version=conn.getLibVersion(),
                free_memory_bytes=conn.getFreeMemory(),
                cpu_model=model,
            )

    def domain(self, name_or_uuid: str) -> DomainFacts | None:
        conn = self._c()
        with _mapped(f"look up {name_or_uuid} on {self.name}", self.name):
            try:
                dom = self._dom(conn, name_or_uuid)
                state, why = dom.state()
                xml = dom.XMLDesc(0)
                job = _has_job(dom) if dom.isActive() else False
                persistent = dom.isPersistent() == 1
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == NO_DOMAIN:
                    return None
                raise
        facts = domain_facts(xml, _STATE.get(state, str(state)), persistent, job)
        reasons = _REASONS.get(state, ())
        return replace(facts, state_reason=reasons[why] if 0 <= why < len(reasons) else str(why))

    def cpu_compatible(self, dom: DomainFacts) -> bool:
        if not dom.cpu_xml or dom.cpu_mode == "host-passthrough":
            return True  # nothing to compare, or checked by model in prechecks
        conn = self._c()
        with _mapped(f"compare CPU of {dom.name} on {self.name}", self.name):
            result = conn.compareHypervisorCPU(
                dom.emulator or None,
                dom.arch or None,
                dom.machine or None,
                dom.virt_type or None,
                dom.cpu_xml,
                0,
            )
        return bool(result != libvirt.VIR_CPU_COMPARE_INCOMPATIBLE)

    # -- storage --------------------------------------------------------------------
    def pools(self) -> list[PoolFacts]:
        conn = self._c()
        out = []
        with _mapped(f"list storage pools on {self.name}", self.name):
            for pool in conn.listAllStoragePools(0):
                active = pool.isActive() == 1
                if active:
                    _refresh(pool)
                path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or ""
                available = pool.info()[3] if active else 0
                out.append(PoolFacts(pool.name(), path, available, active))
        return out

    def volume(self, path: str) -> VolumeFacts | None:
        conn = self._c()
        with _mapped(f"look up volume {path} on {self.name}", self.name):
            try:
                vol = conn.storageVolLookupByPath(path)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == NO_VOLUME:
                    return None
                raise
            return _volume_facts(vol)

    def volumes_backed_by(self, path: str) -> list[str]:
        conn = self._c()
        out = []
        with _mapped(f"list volumes on {self.name}", self.name):
            for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
                for vol in pool.listAllVolumes(0):
                    backing = volume_backing(vol.XMLDesc(0))
                    if backing is not None and backing.path == path:
                        out.append(vol.path())
        return out

    def paths_in_use(self) -> set[str]:
        conn = self._c()
        used: set[str] = set()
        with _mapped(f"list domains on {self.name}", self.name):
            for dom in conn.listAllDomains(0):
                try:
                    facts = domain_facts(dom.XMLDesc(0), "", True, False)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == NO_DOMAIN:
                        continue  # went away while we listed
                    raise
                for d in facts.disks:
                    used.add(d.path)
                    used.update(b.path for b in d.backing)
                used.update(facts.other_disk_sources)
        return used

    def create_volume(
        self, pool: str, name: str, capacity: int, fmt: str, backing: ChainLink | None
    ) -> VolumeFacts:
        conn = self._c()
        with _mapped(f"create volume {name} in pool {pool} on {self.name}", self.name):
            p = conn.storagePoolLookupByName(pool)
            vol = p.createXML(volume_xml(name, capacity, fmt, backing), 0)
            return _volume_facts(vol)

    def delete_volume(self, path: str) -> None:
        conn = self._c()
        with _mapped(f"delete volume {path} on {self.name}", self.name):
            conn.storageVolLookupByPath(path).delete(0)

    def read_volume(self, path: str, length: int) -> Iterator[bytes]:
        conn = self._c()
        with _mapped(f"download {path} from {self.name}", self.name):
            vol = conn.storageVolLookupByPath(path)
            stream = conn.newStream(0)
            vol.download(stream, 0, length, 0)
            try:
                while True:
                    data = stream.recv(CHUNK)
                    if not isinstance(data, bytes) or not data:
                        break
                    yield data
                stream.finish()
            except BaseException:
                _abort_stream(stream)
                raise

    def write_volume(self, path: str, chunks: Iterable[bytes], length: int) -> int:
        conn = self._c()
        with _mapped(f"upload {path} to {self.name}", self.name):
            vol = conn.storageVolLookupByPath(path)
            stream = conn.newStream(0)
            vol.upload(stream, 0, length, 0)
            sent = 0
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        n = stream.send(bytes(view))
                        view = view[n:]
                        sent += n
                stream.finish()
            except BaseException:
                _abort_stream(stream)
                raise
        return sent

    # -- migration ------------------------------------------------------------------
    def migrate(self, dom: str, request: MigrationRequest) -> None:
        """Blocking migrateToURI3 on a connection of its own, so polling is never queued behind it."""
        conn = self._open()
        try:
            with _mapped(f"migrate {dom} from {self.name} to {request.dest_uri}", self.name):
                self._dom(conn, dom).migrateToURI3(
                    request.dest_uri, migration_params(request), migration_flags(request)
                )
        finally:
            with suppress(libvirt.libvirtError):
                conn.close()

    def job_stats(self, dom: str, now: float) -> JobSample | None:
        conn = self._c()
        with _mapped(f"job stats of {dom} on {self.name}", self.name):
            st = self._dom(conn, dom).jobStats(0)
        if st.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
            return None
        return sample_from_stats(st, now)

    def completed_stats(self, dom: str) -> dict[str, int]:
        conn = self._c()
        with _mapped(f"completed job stats of {dom} on {self.name}", self.name):
            st = self._dom(conn, dom).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        return {k: int(v) for k, v in st.items() if isinstance(v, int | float)}

    def abort_job(self, dom: str) -> None:
        conn = self._c()
        with _mapped(f"abort job of {dom} on {self.name}", self.name):
            self._dom(conn, dom).abortJob()

    def set_max_downtime(self, dom: str, ms: int) -> None:
        conn = self._c()
        with _mapped(f"set max downtime of {dom} on {self.name}", self.name):
            self._dom(conn, dom).migrateSetMaxDowntime(int(ms), 0)

    def start_post_copy(self, dom: str) -> None:
        conn = self._c()
        with _mapped(f"start post-copy of {dom} on {self.name}", self.name):
            self._dom(conn, dom).migrateStartPostCopy(0)


def sample_from_stats(st: Mapping[str, Any], now: float) -> JobSample:
    """A libvirt jobStats() dict as a JobSample (dirty rate converted from pages/s to bytes/s)."""

    def g(key: str) -> int:
        return int(st.get(key, 0) or 0)

    page = g("memory_page_size") or 4096
    return JobSample(
        t=now,
        data_total=g("data_total"),
        data_processed=g("data_processed"),
        data_remaining=g("data_remaining"),
        disk_total=g("disk_total"),
        disk_processed=g("disk_processed"),
        disk_remaining=g("disk_remaining"),
        memory_total=g("memory_total"),
        memory_processed=g("memory_processed"),
        memory_remaining=g("memory_remaining"),
        memory_bps=g("memory_bps"),
        dirty_rate_bytes_s=g("memory_dirty_rate") * page,
        memory_iteration=g("memory_iteration"),
        expected_downtime_ms=g("downtime"),
    )


def _volume_facts(vol: libvirt.virStorageVol) -> VolumeFacts:
    xml = vol.XMLDesc(0)
    _kind, capacity, allocation = vol.info()
    try:
        physical = vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2]
    except libvirt.libvirtError:
        physical = allocation
    return VolumeFacts(
        path=vol.path(),
        name=vol.name(),
        pool=vol.storagePoolLookupByVolume().name(),
        capacity=capacity,
        allocation=allocation,
        physical=physical,
        format=volume_format(xml),
        backing=volume_backing(xml),
        mtime=volume_mtime(xml),
    )


def _abort_stream(stream: libvirt.virStream) -> None:
    with suppress(libvirt.libvirtError):
        stream.abort()


def libvirt_factory(endpoints: Mapping[str, MigrationEndpoint]) -> HypervisorFactory:
    """Hypervisors by host name, one cached LibvirtHypervisor per host (thread-safe)."""
    cache: dict[str, LibvirtHypervisor] = {}
    lock = threading.Lock()

    def get(name: str) -> Hypervisor:
        with lock:
            if name not in cache:
                cache[name] = LibvirtHypervisor(endpoints[name])
            return cache[name]

    return get
