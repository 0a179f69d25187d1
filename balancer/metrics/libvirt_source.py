"""LoadSource over libvirt: one long-lived connection per host, polled concurrently with a per-host timeout.

Per host and tick: one ``getAllDomainStats`` (state, cpu-total, balloon, vcpu, block with the backing
chain, dirtyrate; NOWAIT so a domain busy in a job does not block it), free memory, the active storage
pools and their volumes, and per domain its XML (disk chain, tags) and, where the driver has them, job
stats (a migration in/out). What the bulk record lacks is read per domain: ``virDomainGetInfo`` (the
test driver's record has state only) and pool-volume sizes for images without block stats.

Errors: the only module in metrics/ that catches ``libvirt.libvirtError``. A failed host is a
HostSample with a :class:`CollectError` of kind ``connect`` (could not open), ``timeout`` (no answer
within ``host_timeout_seconds``: the hung call is abandoned on its thread and its connection never
reused) or ``libvirt`` (a call failed; libvirt's code and text kept). Failed hosts are retried with
exponential backoff on the injected ``now``. A domain that disappears between calls is skipped.
"""

from __future__ import annotations

import contextlib
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import libvirt

from balancer.errors import CollectError
from balancer.metrics import domain
from balancer.metrics.args import CollectionArgs, default_args
from balancer.metrics.polling import HostPoller
from balancer.metrics.source import HostEndpoint, HostSample, NodeSample, VMSample

log = logging.getLogger(__name__)

STATS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_BLOCK
    | getattr(libvirt, "VIR_DOMAIN_STATS_DIRTYRATE", 0)
)
STATS_FLAGS = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING | getattr(
    libvirt, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 0
)
# Client keepalive (probe every 5 s, dead after 3 unanswered) closes a connection whose peer vanished,
# which makes its hung calls return. libvirt only does it when the process runs an event loop
# (virEventRegisterDefaultImpl + virEventRunDefaultImpl); otherwise TCP's own timeouts apply.
KEEPALIVE = (5, 3)
_UNSUPPORTED = frozenset(
    {libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED}
)
_GONE = frozenset(
    {libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_ERR_NO_STORAGE_VOL}
)


@dataclass
class _Conn:
    """An open connection and what is fixed for its lifetime; used by one poll at a time."""

    conn: libvirt.virConnect
    static: NodeSample
    volume_paths: dict[str, str] = field(default_factory=dict)  # volume key → path
    specs: dict[str, tuple[str, domain.DomainXML]] = field(default_factory=dict)  # uuid → (XML, parsed)
    job_stats: bool = True  # virDomainGetJobStats supported
    dirty_rate: bool = True  # virDomainStartDirtyRateCalc supported

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):  # already dead: nothing left to release
            self.conn.close()


class LibvirtSource:
    """Polls every endpoint over libvirt, concurrently (``args.workers`` threads); one HostSample each."""

    def __init__(self, endpoints: Sequence[HostEndpoint], args: CollectionArgs | None = None) -> None:
        self.args = args or default_args()
        self._poller: HostPoller[_Conn] = HostPoller(endpoints, self.args, self._poll)

    def _poll(
        self, endpoint: HostEndpoint, conn: _Conn | None, note: dict[str, Any]
    ) -> tuple[HostSample, _Conn | None]:
        return _Poll(endpoint, conn, self.args, note).run()

    def collect(self, now: float) -> list[HostSample]:
        return self._poller.collect(now)

    def close(self) -> None:
        self._poller.close()

    def __enter__(self) -> LibvirtSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Poll:
    """One poll of one host, run on a worker thread; returns the sample and the connection to keep."""

    def __init__(
        self, endpoint: HostEndpoint, conn: _Conn | None, args: CollectionArgs, note: dict[str, Any]
    ) -> None:
        self.endpoint, self.conn, self.args = endpoint, conn, args
        self.note = note  # "phase": read by the poller when this poll overruns

    def run(self) -> tuple[HostSample, _Conn | None]:
        started = time.monotonic()
        reused = self.conn is not None
        sample, conn = self._attempt(started)
        if reused and conn is None and sample.error is not None and sample.error.kind == "libvirt":
            # the kept connection had died (e.g. libvirtd restarted): one fresh try, same time budget
            self.conn = None
            sample, conn = self._attempt(started)
        return sample, conn

    def _attempt(self, started: float) -> tuple[HostSample, _Conn | None]:
        if self.conn is None:
            self.note["phase"] = "connecting"
            try:
                self.conn = self._open()
            except libvirt.libvirtError as exc:
                return self._failed("connect", exc, started), None
        self.note["phase"] = "reading stats"
        try:
            return self._read(self.conn, started), self.conn
        except libvirt.libvirtError as exc:
            alive = _alive(self.conn.conn)
            if not alive:
                self.conn.close()
            return self._failed("libvirt", exc, started), self.conn if alive else None
        except ET.ParseError as exc:  # libvirt answered with XML we cannot read
            err = CollectError(self.endpoint.name, "libvirt", f"unreadable XML ({self.note['phase']}): {exc}")
            return self._down_sample(err, started), self.conn

    def _failed(self, kind: str, exc: libvirt.libvirtError, started: float) -> HostSample:
        err = CollectError(
            self.endpoint.name, kind, exc.get_error_message() or str(exc), exc.get_error_code()
        )
        return self._down_sample(err, started)

    def _down_sample(self, err: CollectError, started: float) -> HostSample:
        return HostSample(
            endpoint=self.endpoint,
            sampled_at=time.monotonic(),
            error=err,
            duration_seconds=time.monotonic() - started,
        )

    def _open(self) -> _Conn:
        # read-only unless we start dirty-rate measurements, which libvirt counts as a write
        if self.args.dirty_rate_seconds > 0:
            conn = libvirt.open(self.endpoint.uri)
        else:
            conn = libvirt.openReadOnly(self.endpoint.uri)
        with contextlib.suppress(libvirt.libvirtError):  # no event loop, or a local driver: not needed
            conn.setKeepAlive(*KEEPALIVE)
        try:
            return _Conn(conn=conn, static=_static(conn))
        except libvirt.libvirtError:
            conn.close()
            raise

    def _read(self, c: _Conn, started: float) -> HostSample:
        conn = c.conn
        records = conn.getAllDomainStats(STATS, STATS_FLAGS)
        sampled_at = time.monotonic()
        persistent = {
            d.UUIDString() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)
        }
        self.note["phase"] = "reading storage pools"
        volumes, disk_capacity_bytes, disk_free = self._pools(c)
        vms = []
        for dom, stats in records:
            uuid = dom.UUIDString()
            vm = self._vm(c, dom, uuid, stats, volumes, uuid in persistent)
            if vm is not None:
                vms.append(vm)
        for gone in c.specs.keys() - {v.uuid for v in vms}:
            del c.specs[gone]
        node = replace(
            c.static,
            memory_free_bytes=int(conn.getFreeMemory()),
            disk_capacity_bytes=disk_capacity_bytes,
            disk_free_bytes=disk_free,
            volumes=tuple(sorted(volumes)),
        )
        return HostSample(
            endpoint=self.endpoint,
            sampled_at=sampled_at,
            node=node,
            vms=tuple(vms),
            duration_seconds=time.monotonic() - started,
        )

    def _pools(self, c: _Conn) -> tuple[dict[str, libvirt.virStorageVol], int, int]:
        volumes: dict[str, libvirt.virStorageVol] = {}
        capacity = available = 0
        for pool in c.conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
            try:
                _state, cap, _alloc, avail = pool.info()
                vols = pool.listAllVolumes(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() in _GONE or exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                    continue  # stopped or removed since it was listed
                raise
            capacity, available = capacity + int(cap), available + int(avail)
            for vol in vols:
                key = vol.key()
                path = c.volume_paths.get(key)
                if path is None:
                    path = c.volume_paths[key] = vol.path()  # fixed for a volume: ask once per connection
                volumes[path] = vol
        return volumes, capacity, available

    def _vm(
        self,
        c: _Conn,
        dom: libvirt.virDomain,
        uuid: str,
        stats: dict[str, Any],
        volumes: dict[str, libvirt.virStorageVol],
        persistent: bool,
    ) -> VMSample | None:
        self.note["phase"] = f"reading domain {dom.name()}"
        try:
            spec = _spec(c, uuid, dom.XMLDesc(0))
            info, info_at = None, None
            if domain.needs_info(stats):
                # stamped at the middle of the call: the counter is read inside it, and the thread
                # can wait for the GIL (other polling threads) on the way in and on the way out
                before = time.monotonic()
                info = dom.info()
                info_at = (before + time.monotonic()) / 2
            state, _reason = domain.state_of(stats, info)
            sizes = {}
            for path in domain.missing_paths(spec, domain.BlockStats.of(stats)):
                if path in volumes:
                    _type, cap, alloc = volumes[path].info()
                    sizes[path] = domain.ImageBytes(capacity=int(cap), allocated=int(alloc))
            migrating = self._job_migrating(c, dom) if state in (1, 3) else False
            if state == 1 and self.args.dirty_rate_seconds > 0:
                self._start_dirty_rate(c, dom)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in _GONE:
                return None  # undefined or migrated away between the bulk call and now
            raise
        return domain.vm_sample(
            dom.name(),
            uuid,
            stats,
            spec,
            info=info,
            volumes=sizes,
            persistent=persistent,
            job_migrating=migrating,
            info_at=info_at,
        )

    def _job_migrating(self, c: _Conn, dom: libvirt.virDomain) -> bool:
        if not c.job_stats:
            return False
        try:
            job = dom.jobStats(0)
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            if code in _UNSUPPORTED:
                c.job_stats = False  # e.g. the test driver: the state reason is all we have
                return False
            if code == libvirt.VIR_ERR_OPERATION_INVALID:
                return False  # not running any more
            raise
        return domain.job_is_migration(job)

    def _start_dirty_rate(self, c: _Conn, dom: libvirt.virDomain) -> None:
        if not c.dirty_rate:
            return
        try:
            dom.startDirtyRateCalc(self.args.dirty_rate_seconds, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in _UNSUPPORTED:
                c.dirty_rate = False
                log.info(
                    "event=dirty_rate_unsupported host=%s error=%r code=%s",
                    self.endpoint.name,
                    exc.get_error_message(),
                    exc.get_error_code(),
                )
            elif exc.get_error_code() not in (libvirt.VIR_ERR_OPERATION_INVALID, *_GONE):
                # one VM's optional measurement failing must not take the host down; it reads as 0
                log.warning(
                    "event=dirty_rate_not_started host=%s vm=%s error=%r code=%s",
                    self.endpoint.name,
                    dom.name(),
                    exc.get_error_message(),
                    exc.get_error_code(),
                )


def _spec(c: _Conn, uuid: str, xml: str) -> domain.DomainXML:
    """The parsed XML, reused while the domain's XML text is unchanged (it rarely changes)."""
    cached = c.specs.get(uuid)
    if cached is None or cached[0] != xml:
        cached = c.specs[uuid] = (xml, domain.parse_domain_xml(xml))
    return cached[1]


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


def _static(conn: libvirt.virConnect) -> NodeSample:
    """What does not change while a connection is open: CPUs, memory, CPU model, versions."""
    model, memory_mib, cpus = conn.getInfo()[:3]
    return NodeSample(
        cpus=int(cpus),
        memory_bytes=int(memory_mib) * domain.MIB,
        cpu_model=_capabilities_cpu_model(conn) or str(model),
        hypervisor=conn.getType(),
        hypervisor_version=int(conn.getVersion()),
        libvirt_version=int(conn.getLibVersion()),
    )


def _capabilities_cpu_model(conn: libvirt.virConnect) -> str:
    try:
        root = ET.fromstring(conn.getCapabilities())
    except (libvirt.libvirtError, ET.ParseError):
        return ""  # getInfo's model (the architecture) is the fallback
    return (root.findtext("./host/cpu/model") or "").strip()
