"""The collection seam: ``LoadSource.collect(now)`` returns one raw :class:`HostSample` per host.

Samples are counters and facts as the hypervisor reports them (CPU time in nanoseconds, memory and
disk in bytes); rates and smoothing are computed later by the pure ``window`` module. Implementations:
``libvirt_source.LibvirtSource`` (real hosts, the lab and the ``test:///`` driver) and the simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from balancer.errors import CollectError
from balancer.model import Disk, VMTags


@dataclass(frozen=True)
class HostEndpoint:
    """Where and how to reach one host; ``cpus``/``memory_bytes``/``disk_capacity_bytes`` override what
    it reports."""

    name: str
    uri: str
    migration_uri: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    cpus: float | None = None
    memory_bytes: int | None = None
    disk_capacity_bytes: int | None = None


@dataclass(frozen=True)
class VMSample:
    """One domain as read in one poll; counters are raw, nothing is smoothed."""

    name: str
    uuid: str
    state: str  # libvirt state name: running, paused, shutoff, ...
    vcpus: int
    memory_bytes: int  # what the domain holds: balloon "current", else its configured current memory
    memory_used_bytes: int  # guest-used (available - unused), else RSS, else memory_bytes; 0 when shut off
    cpu_time_ns: int | None  # cumulative CPU time; None when the hypervisor did not report it
    # Source clock when ``cpu_time_ns`` was read, if not by the host's bulk stats call (the test driver's
    # counter comes from a per-domain virDomainGetInfo issued later); None = the host's ``sampled_at``.
    cpu_sampled_at: float | None = None
    dirty_rate_bytes_s: float = 0.0  # last finished dirty-rate measurement; 0 when there is none
    disks: tuple[Disk, ...] = ()
    tags: VMTags = field(default_factory=VMTags)
    persistent: bool = True
    migrating: bool = False

    @property
    def accrues_cpu(self) -> bool:
        """True when CPU time advances in this state (running or blocked); otherwise its load is 0."""
        return self.state in ("running", "blocked")


@dataclass(frozen=True)
class NodeSample:
    """What a host reports about itself in one poll."""

    cpus: int
    memory_bytes: int
    memory_free_bytes: int = 0
    disk_capacity_bytes: int = 0  # sum of the active storage pools' capacity (0 = no pools)
    disk_free_bytes: int = 0  # sum of their available bytes
    volumes: tuple[str, ...] = ()  # paths of every volume in the active pools
    cpu_model: str = ""
    hypervisor: str = ""
    hypervisor_version: int = 0
    libvirt_version: int = 0


@dataclass(frozen=True)
class HostSample:
    """One host's poll: ``node`` and ``vms`` when it answered, ``error`` when it did not.

    ``sampled_at`` is the source's own monotonic clock (seconds) when the domain counters were read;
    CPU rates divide counter deltas by deltas of it, not by the tick's ``now``, so a late or slow
    tick does not distort them. ``duration_seconds`` is how long the poll took (the timeout when
    it was abandoned).
    """

    endpoint: HostEndpoint
    sampled_at: float
    node: NodeSample | None = None
    vms: tuple[VMSample, ...] = ()
    error: CollectError | None = None
    duration_seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def ok(self) -> bool:
        return self.error is None and self.node is not None


class LoadSource(Protocol):
    """Anything that can poll the hosts: libvirt, the simulator, a recorded trace."""

    def collect(self, now: float) -> list[HostSample]:
        """One sample per host, in the source's host order; ``now`` is the tick's epoch seconds."""
        ...

    def close(self) -> None:
        """Release connections and threads; collect() must not be called afterwards."""
        ...
