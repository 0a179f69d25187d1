"""What the executor learns from a hypervisor, as plain values (no I/O here).

The :class:`~balancer.executor.hypervisor.Hypervisor` seam returns these, so pre-checks, storage
planning and recovery work on values that the libvirt implementation, the test driver or a
simulator can all produce.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

CopyKind = Literal["incremental", "full"]


@dataclass(frozen=True)
class MigrationEndpoint:
    """How to reach one host: ``uri`` for our calls, ``migration_uri`` for the source libvirtd to dial."""

    name: str
    uri: str
    migration_uri: str


@dataclass(frozen=True)
class NodeFacts:
    """One host's hypervisor: type (``QEMU``), versions (libvirt encoding), free memory in bytes."""

    hypervisor_type: str
    hypervisor_version: int
    libvirt_version: int
    free_memory_bytes: int
    cpu_model: str = ""


@dataclass(frozen=True)
class ChainLink:
    """One backing file of a disk: its path and image format."""

    path: str
    format: str


@dataclass(frozen=True)
class DiskFacts:
    """A domain disk with a file source; ``backing`` is top-down (nearest backing file first)."""

    target: str
    path: str
    format: str
    device: str = "disk"
    readonly: bool = False
    shareable: bool = False
    backing: tuple[ChainLink, ...] = ()

    @property
    def migratable(self) -> bool:
        """Copied by a block migration: a writable, unshared disk (cdroms and shared disks are not)."""
        return self.device == "disk" and not self.readonly and not self.shareable


@dataclass(frozen=True)
class DomainFacts:
    """A domain as one host reports it now."""

    name: str
    uuid: str
    state: str  # running, paused, shutoff, ...
    persistent: bool
    memory_bytes: int
    job_active: bool = False
    disks: tuple[DiskFacts, ...] = ()
    other_disk_sources: tuple[str, ...] = ()  # non-file or non-migratable disks with a source
    cpu_xml: str = ""  # the live <cpu> element, "" when the domain has none
    cpu_mode: str = ""
    emulator: str = ""
    arch: str = ""
    machine: str = ""
    virt_type: str = ""
    state_reason: str = ""  # libvirt's reason for the state: destroyed, shutdown, crashed, migrated...

    @property
    def running(self) -> bool:
        return self.state == "running"

    def describe_state(self) -> str:
        """``shutoff (destroyed)``: the state with libvirt's reason for it, when known."""
        known = self.state_reason and self.state_reason != "unknown"
        return f"{self.state} ({self.state_reason})" if known else self.state


@dataclass(frozen=True)
class PoolFacts:
    """A storage pool and its directory; ``available`` in bytes."""

    name: str
    path: str
    available: int
    active: bool = True


@dataclass(frozen=True)
class VolumeFacts:
    """A storage volume; sizes in bytes (``physical`` is the file's length on disk)."""

    path: str
    name: str
    pool: str
    capacity: int
    allocation: int
    physical: int
    format: str
    backing: ChainLink | None = None
    mtime: str = ""  # last modification, as libvirt reports it ("seconds.nanoseconds"); "" if unknown


@dataclass(frozen=True)
class MigrationRequest:
    """What to ask libvirt for: ``copy`` selects VIR_MIGRATE_NON_SHARED_INC or _DISK."""

    dest_uri: str
    disks: tuple[str, ...]
    copy: CopyKind
    bandwidth_mib_s: int
    tls: bool = False
    auto_converge: bool = False
    post_copy: bool = False
    extra: dict[str, int] = field(default_factory=dict)


def pool_for(path: str, pools: tuple[PoolFacts, ...] | list[PoolFacts]) -> PoolFacts | None:
    """The active pool whose directory holds ``path`` directly (libvirt's own rule for dir pools)."""
    directory = os.path.normpath(os.path.dirname(path))
    for p in pools:
        if p.active and os.path.normpath(p.path) == directory:
            return p
    return None
