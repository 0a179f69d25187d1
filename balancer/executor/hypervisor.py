"""The executor's one I/O seam: what it asks of a host, as two Protocols (storage and migration).

A move uses a host in two separate ways: its storage (pools and volumes: pre-checks size them,
provisioning creates and streams them, cleanup deletes them) and its domains (look-ups, the
migration job and its tuning). :class:`StorageHost` and :class:`MigrationHost` are those two
interfaces; :class:`Hypervisor` is one host offering both, which is what the runner, pre-checks and
recovery are handed (through a :data:`HypervisorFactory`, by host name). Modules that need only one
side ask for only that side (``backing``, ``cleanup``: storage; ``watch``, ``verify``: migration).

Implementations:

* ``executor/libvirt_hypervisor.py: LibvirtHypervisor``: libvirt-python (the lab's hosts, or
  libvirt's ``test:///`` driver in fast tests). The libvirt call behind each method is named below.
* ``sim/hypervisor.py: SimHypervisor``: in-memory simulated hosts, with a documented fault model. The
  executor's unit tests drive the real Runner on it; the day-long simulator runs the real pre-checks
  on it.
* ``executor/fence.py: FencedHypervisor``: wraps either and refuses host-changing calls once the
  leadership term has lapsed.

Errors: every failure of a host call raises :class:`~balancer.errors.MigrationError` carrying
libvirt's error code, domain and message, the operation that failed (``"look up web1 on h2"``) and
``host``, the name of the host the call went to: pre-checks blame the source or the target by that
field, never by the wording. "Not there" is a value, not an error (``domain`` and ``volume`` return
``None``). ``FencedHypervisor`` raises :class:`~balancer.errors.LeaseLost` instead of acting.
Nothing here powers off, destroys or undefines a domain: the only definition that ever goes away is
the source's, removed under VIR_MIGRATE_UNDEFINE_SOURCE after a completed migration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from balancer.executor.convergence import JobSample
from balancer.executor.facts import (
    ChainLink,
    DomainFacts,
    MigrationRequest,
    NodeFacts,
    PoolFacts,
    VolumeFacts,
)


class StorageHost(Protocol):
    """One host's storage pools and volumes. Paths are absolute file paths on that host."""

    name: str

    def pools(self) -> list[PoolFacts]:
        """Every storage pool, with its directory and current free bytes (0 for an inactive pool).

        libvirt: ``listAllStoragePools``, then ``refresh``, ``XMLDesc`` and ``info`` per active pool.
        A refresh refused because the pool has a volume job running (another move creating its
        overlay there) is not an error: the sizes libvirt last computed stand.
        """
        ...

    def volume(self, path: str) -> VolumeFacts | None:
        """The volume at ``path`` (sizes, format, backing file, mtime), or None when no pool holds it.

        libvirt: ``storageVolLookupByPath`` (VIR_ERR_NO_STORAGE_VOL → None), ``info``, ``infoFlags``
        (physical size; the allocation when the driver cannot say), ``XMLDesc``.
        """
        ...

    def volumes_backed_by(self, path: str) -> list[str]:
        """Paths of the volumes, in active pools, whose backing file is ``path``.

        Cleanup keeps a backing file that anything still stands on. libvirt: ``listAllVolumes`` of
        each active pool and each volume's ``XMLDesc``.
        """
        ...

    def paths_in_use(self) -> set[str]:
        """Every file any domain defined here uses: its disks, their backing chains, other sources.

        libvirt: ``listAllDomains`` and each domain's ``XMLDesc``; a domain that goes away while
        listed is left out, not an error.
        """
        ...

    def create_volume(
        self, pool: str, name: str, capacity: int, fmt: str, backing: ChainLink | None
    ) -> VolumeFacts:
        """Create volume ``name`` (``capacity`` bytes, format ``fmt``, over ``backing`` if given) in ``pool``.

        Fails (libvirt's VIR_ERR_STORAGE_VOL_EXIST) if it exists: never overwrites. libvirt:
        ``storagePoolLookupByName`` and ``createXML``.
        """
        ...

    def delete_volume(self, path: str) -> None:
        """Delete the volume at ``path``; fails (VIR_ERR_NO_STORAGE_VOL) if there is none.

        libvirt: ``storageVolLookupByPath`` and ``delete``. Callers decide what may go (cleanup.py).
        """
        ...

    def read_volume(self, path: str, length: int) -> Iterator[bytes]:
        """The first ``length`` bytes of the volume, in chunks (≤ 1 MiB each), as they arrive.

        libvirt: ``newStream`` and ``download``; the stream is aborted if the reader stops early.
        """
        ...

    def write_volume(self, path: str, chunks: Iterable[bytes], length: int) -> int:
        """Write ``chunks`` (``length`` bytes in all) over the existing volume; returns the bytes sent.

        The caller checks the result against what it meant to write (a short write is possible).
        libvirt: ``newStream`` and ``upload``; the stream is aborted if ``chunks`` raises.
        """
        ...


class MigrationHost(Protocol):
    """One host's hypervisor, its domains (by name or UUID string) and their migration jobs."""

    name: str

    def node(self) -> NodeFacts:
        """Hypervisor type and versions, free memory in bytes, host CPU model.

        Also the "does libvirtd answer" probe of the pre-checks. libvirt: ``getCapabilities``,
        ``getType``, ``getVersion``, ``getLibVersion``, ``getFreeMemory``.
        """
        ...

    def domain(self, name_or_uuid: str) -> DomainFacts | None:
        """The domain as the host reports it now (state and reason, persistence, whether a job runs,
        memory, disks and their chains, CPU), or None when it is not defined here.

        libvirt: ``lookupByUUIDString`` / ``lookupByName`` (VIR_ERR_NO_DOMAIN → None), ``state``,
        ``XMLDesc``, ``isPersistent``, ``jobInfo`` (VIR_ERR_NO_SUPPORT, as in the test driver, reads
        as "no job").
        """
        ...

    def cpu_compatible(self, dom: DomainFacts) -> bool:
        """Whether this host can run ``dom``'s CPU (True when ``dom`` states none, or is
        host-passthrough: the pre-checks compare CPU models for that).

        libvirt: ``compareHypervisorCPU``; False only for VIR_CPU_COMPARE_INCOMPATIBLE.
        """
        ...

    def migrate(self, dom: str, request: MigrationRequest) -> None:
        """Live-migrate ``dom`` from this host as ``request`` says, blocking until it ends.

        Returns when libvirt reports success: the domain then runs on the target and its definition
        here is gone (VIR_MIGRATE_UNDEFINE_SOURCE). Raises when it failed or was aborted (libvirt's
        VIR_ERR_OPERATION_ABORTED). Runs on a connection of its own so polling is never queued
        behind it. libvirt: ``migrateToURI3`` with Nova's block-migration flags.
        """
        ...

    def job_stats(self, dom: str, now: float) -> JobSample | None:
        """The running job's progress (bytes, dirty rate in bytes/s, iteration) stamped ``now``;
        None when no job runs. libvirt: ``jobStats(0)``."""
        ...

    def completed_stats(self, dom: str) -> dict[str, int]:
        """Figures of the job that last completed (``downtime``, ``memory_processed`` ...), read on
        the target after a migration. libvirt: ``jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)``."""
        ...

    def abort_job(self, dom: str) -> None:
        """Ask the running job to stop; ``migrate`` then raises. Fails (VIR_ERR_OPERATION_INVALID)
        when no job runs. libvirt: ``abortJob``."""
        ...

    def set_max_downtime(self, dom: str, ms: int) -> None:
        """Allow the running migration ``ms`` milliseconds of pause to finish.
        libvirt: ``migrateSetMaxDowntime``."""
        ...

    def start_post_copy(self, dom: str) -> None:
        """Switch the running migration (started with post-copy allowed) to post-copy.
        libvirt: ``migrateStartPostCopy``."""
        ...


class Hypervisor(StorageHost, MigrationHost, Protocol):
    """One host, both sides: what the runner, the pre-checks and recovery are handed."""

    def close(self) -> None:
        """Release the host's connection (a later call opens a new one)."""
        ...


HypervisorFactory = Callable[[str], Hypervisor]
"""The hypervisor of a host, by its configured name (implementations cache one per host)."""
