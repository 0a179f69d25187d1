"""The cluster as typed values: Host, VM, Disk, Snapshot, Move, Skip, Plan, MigrationRecord.

Units are base units everywhere: bytes, seconds (epoch seconds for instants),
CPU in cores (1.0 = one core busy). Everything here is a frozen dataclass;
nothing does I/O. ``snapshot_to_json``/``snapshot_from_json`` round-trip a
Snapshot exactly (the schema is in docs/snapshot.md and
docs/snapshot.schema.json, generated from these classes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from functools import cached_property
from typing import Any, Literal

import numpy as np
from pydantic import TypeAdapter

from balancer.errors import SnapshotError
from balancer.reasons import Reason, priority_of

# 2: a host's storage capacity is ``disk_capacity_bytes`` (1 called it ``disk_bytes``, the name the
# API gives bytes of VM disks); version 1 files are still read.
SNAPSHOT_SCHEMA_VERSION = 2


class HostState(StrEnum):
    """State of a host as the balancer sees it."""

    UP = "up"
    DOWN = "down"  # its libvirtd did not answer within the per-host timeout
    MAINTENANCE = "maintenance"  # excluded by config/operator: never a target, not drained
    DRAINING = "draining"  # a drain request is open: never a target, VMs leave it


class Resource(IntEnum):
    """Column order of the resource axis in :class:`SnapshotArrays`."""

    CPU = 0  # cores
    MEMORY = 1  # bytes
    DISK = 2  # bytes


@dataclass(frozen=True)
class BackingFile:
    """One image below a disk's top overlay (e.g. Nova's ``_base`` file)."""

    path: str
    format: str
    virtual_bytes: int
    allocated_bytes: int


@dataclass(frozen=True)
class Disk:
    """A VM disk: the top image (an overlay when ``backing`` is not empty) and its chain."""

    target: str  # guest device name, e.g. "vda"
    path: str
    format: str  # "qcow2", "raw", ...
    virtual_bytes: int
    allocated_bytes: int  # bytes the top image occupies on the host
    backing: tuple[BackingFile, ...] = ()  # top-down, nearest backing file first

    @property
    def chain_bytes(self) -> int:
        """Bytes a full copy (no backing on the target) has to move at most."""
        return self.allocated_bytes + sum(b.allocated_bytes for b in self.backing)


@dataclass(frozen=True)
class VMTags:
    """Rules an operator put on the domain itself (libvirt ``<metadata>``, our namespace)."""

    exclude: bool = False
    pin_hosts: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class VM:
    """A domain on one host, with its smoothed load."""

    name: str
    uuid: str
    host: str
    state: str  # libvirt state name: running, paused, shutoff, ...
    vcpus: int
    memory_bytes: int  # memory the VM holds now (balloon "actual"; = configured without a balloon)
    cpu_cores: float  # smoothed cores used
    memory_used_bytes: int = 0  # guest-used or RSS, informational
    dirty_rate_bytes_s: float = 0.0  # 0 when the hypervisor cannot measure it (TCG)
    disks: tuple[Disk, ...] = ()
    tags: VMTags = field(default_factory=VMTags)
    persistent: bool = True
    migrating: bool = False  # a migration job is running on it
    cpu_std_cores: float = 0.0  # standard deviation of its CPU rate over the spread window
    # history features of its CPU rate over the spread window (policy/forecast.py turns them into a forecast)
    cpu_history_cores: float = 0.0  # mean of the rates in the spread window
    cpu_noise_cores: float = 0.0  # sample-to-sample noise (successive differences), cores
    cpu_samples: int = 0  # rates in the spread window; 0 = no history (the planner uses cpu_cores)
    cpu_window_samples: int = 0  # rates in the smoothing window behind cpu_cores

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def disk_allocated_bytes(self) -> int:
        """Bytes of the VM's own top images (what an incremental block migration copies)."""
        return sum(d.allocated_bytes for d in self.disks)

    @property
    def backing_paths(self) -> tuple[str, ...]:
        return tuple(b.path for d in self.disks for b in d.backing)


@dataclass(frozen=True)
class Host:
    """A hypervisor host, its capacity and what it holds."""

    name: str
    state: HostState
    cpus: float  # usable CPU capacity in cores
    memory_bytes: int  # usable memory capacity
    disk_capacity_bytes: int = 0  # capacity of the storage that holds VM disks (0 = unknown: not a limit)
    disk_free_bytes: int = 0
    memory_free_bytes: int = 0  # free memory the node itself reports
    labels: Mapping[str, str] = field(default_factory=dict)
    backing_files: tuple[str, ...] = ()  # paths of backing files present on this host
    hypervisor: str = ""  # e.g. "QEMU"
    hypervisor_version: int = 0  # libvirt encoding: major*1e6 + minor*1e3 + release
    libvirt_version: int = 0
    cpu_model: str = ""
    cpu_history: tuple[float, ...] = ()  # smoothed CPU cores used per tick, newest last
    memory_history: tuple[float, ...] = ()  # smoothed memory bytes used per tick, newest last
    error: str | None = None  # why it is down (libvirt text and code)

    @property
    def usable(self) -> bool:
        """True when VMs may be placed here."""
        return self.state == HostState.UP


@dataclass(frozen=True)
class Snapshot:
    """Everything one tick observed: hosts and VMs, at ``taken_at`` (epoch seconds)."""

    taken_at: float
    hosts: tuple[Host, ...]
    vms: tuple[VM, ...]
    schema_version: int = SNAPSHOT_SCHEMA_VERSION

    def host(self, name: str) -> Host:
        return self._hosts_by_name[name]

    def vm(self, name: str) -> VM:
        return self._vms_by_name[name]

    def vms_on(self, host: str) -> tuple[VM, ...]:
        return tuple(v for v in self.vms if v.host == host)

    @cached_property
    def _hosts_by_name(self) -> dict[str, Host]:
        return {h.name: h for h in self.hosts}

    @cached_property
    def _vms_by_name(self) -> dict[str, VM]:
        return {v.name: v for v in self.vms}

    def arrays(self) -> SnapshotArrays:
        """The numpy view the planner works on."""
        return SnapshotArrays.of(self)

    def load_ratios(self) -> dict[str, dict[str, float]]:
        """Per host: its VMs' cpu and memory demand over its capacity (0.0 where capacity is unknown).

        What ``balancer_host_load_ratio``, ``balancer status`` and ``GET /v1/hosts`` show; the planner
        uses usable capacity (minus the configured reserve) instead.
        """
        return self._load_ratios

    @cached_property
    def _load_ratios(self) -> dict[str, dict[str, float]]:
        used = self.arrays().used()
        return {
            h.name: {
                "cpu": float(used[i, 0] / h.cpus) if h.cpus else 0.0,
                "memory": float(used[i, 1] / h.memory_bytes) if h.memory_bytes else 0.0,
            }
            for i, h in enumerate(self.hosts)
        }


@dataclass(frozen=True, eq=False)
class SnapshotArrays:
    """A Snapshot as arrays; resources follow :class:`Resource` (cpu cores, memory bytes, disk bytes).

    ``capacity[h, r]`` host h's capacity, ``demand[v, r]`` VM v's demand, ``placement[v]`` the index of
    v's host in ``host_names`` (-1 when its host is not in the snapshot).
    """

    host_names: tuple[str, ...]
    vm_names: tuple[str, ...]
    capacity: np.ndarray  # (H, 3) float64
    demand: np.ndarray  # (V, 3) float64
    placement: np.ndarray  # (V,) int64

    @classmethod
    def of(cls, snap: Snapshot) -> SnapshotArrays:
        index = {h.name: i for i, h in enumerate(snap.hosts)}
        capacity = np.array(
            [[h.cpus, h.memory_bytes, h.disk_capacity_bytes] for h in snap.hosts], dtype=np.float64
        ).reshape(len(snap.hosts), 3)
        demand = np.array(
            [[v.cpu_cores, v.memory_bytes, v.disk_allocated_bytes] for v in snap.vms], dtype=np.float64
        ).reshape(len(snap.vms), 3)
        placement = np.array([index.get(v.host, -1) for v in snap.vms], dtype=np.int64)
        return cls(
            host_names=tuple(index),
            vm_names=tuple(v.name for v in snap.vms),
            capacity=capacity,
            demand=demand,
            placement=placement,
        )

    def used(self) -> np.ndarray:
        """(H, 3) summed demand of the VMs placed on each host."""
        used = np.zeros_like(self.capacity)
        placed = self.placement >= 0
        np.add.at(used, self.placement[placed], self.demand[placed])
        return used


CopyMode = Literal["incremental", "full"]


@dataclass(frozen=True)
class MoveCost:
    """What a move is predicted to copy and how long it takes at the bandwidth cap."""

    disk_bytes: int  # overlays (incremental) or whole chains (full)
    backing_bytes: int  # backing files that must first be copied to the target
    memory_bytes: int  # RAM including predicted re-sends
    seconds: float
    copy_mode: CopyMode = "incremental"
    converges: bool = True

    @property
    def total_bytes(self) -> int:
        return self.disk_bytes + self.backing_bytes + self.memory_bytes


@dataclass(frozen=True)
class LoadChange:
    """Normalised load (demand / usable capacity) per resource name, before and after a move."""

    before: Mapping[str, float]
    after: Mapping[str, float]


@dataclass(frozen=True)
class Move:
    """Move one VM from ``source`` to ``target``, and why."""

    vm: str
    source: str
    target: str
    reason: Reason
    cost: MoveCost
    source_load: LoadChange | None = None
    target_load: LoadChange | None = None
    imbalance_before: float = 0.0
    imbalance_after: float = 0.0
    detail: str = ""
    flags: tuple[Reason, ...] = ()  # e.g. WOULD_NOT_CONVERGE on a drain move
    # VMs whose moves off ``target`` (earlier in the plan, or in flight) must end before this one
    # starts: without the room they free, the target could not hold this VM (memory or disk).
    after: tuple[str, ...] = ()

    @property
    def priority(self) -> int:
        return priority_of(self.reason)


@dataclass(frozen=True)
class Skip:
    """A VM, host or the whole plan that was considered and left alone, and why."""

    subject: Literal["vm", "host", "plan"]
    name: str
    reason: Reason
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    """The value ``policy.plan()`` returns; the executor only consumes it."""

    created_at: float
    moves: tuple[Move, ...]
    skips: tuple[Skip, ...]
    imbalance_before: float
    imbalance_after: float
    resource_imbalance_before: Mapping[str, float] = field(default_factory=dict)
    resource_imbalance_after: Mapping[str, float] = field(default_factory=dict)
    overloaded_before: tuple[str, ...] = ()
    overloaded_after: tuple[str, ...] = ()

    @property
    def predicted_bytes(self) -> int:
        return sum(m.cost.total_bytes for m in self.moves)


@dataclass(frozen=True)
class PastMove:
    """A migration that finished (or failed) recently: feeds cooldown, quarantine and anti-ping-pong.

    ``refused``: the target's pre-check refused it (nothing was tried): no quarantine, but the VM
    is steered away from that target for the cooldown.
    """

    vm: str
    source: str
    target: str
    finished_at: float
    succeeded: bool
    refused: bool = False


@dataclass(frozen=True)
class PlannerState:
    """What the planner needs besides the snapshot: drains, migrations in flight, recent history."""

    draining: frozenset[str] = frozenset()
    in_flight: tuple[Move, ...] = ()
    recent: tuple[PastMove, ...] = ()
    # the proposal operators are reviewing (recommend mode): kept while it is as good as a fresh plan
    standing: tuple[Move, ...] = ()


class MoveState(StrEnum):
    """Journal states of one migration. The last five are final."""

    QUEUED = "queued"
    PRECHECKING = "prechecking"
    COPYING_BACKING = "copying_backing"
    MIGRATING = "migrating"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    NEEDS_ATTENTION = "needs_attention"
    REFUSED = "refused"  # a pre-check refused the move: nothing was tried, the VM is not quarantined

    @property
    def final(self) -> bool:
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {MoveState.SUCCEEDED, MoveState.FAILED, MoveState.ABORTED, MoveState.NEEDS_ATTENTION, MoveState.REFUSED}
)


# --------------------------------------------------------------------------- JSON
_SNAPSHOT_ADAPTER: TypeAdapter[Snapshot] = TypeAdapter(Snapshot)
_PLAN_ADAPTER: TypeAdapter[Plan] = TypeAdapter(Plan)


def snapshot_to_dict(snap: Snapshot) -> dict[str, Any]:
    return _SNAPSHOT_ADAPTER.dump_python(snap, mode="json")  # type: ignore[no-any-return]


def snapshot_to_json(snap: Snapshot, indent: int | None = 2) -> str:
    return json.dumps(snapshot_to_dict(snap), indent=indent, sort_keys=False)


def snapshot_from_json(text: str | bytes) -> Snapshot:
    """Parse a snapshot file; a bad file raises SnapshotError naming the field."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SnapshotError(f"not JSON: {exc}") from exc
    if isinstance(data, dict) and data.get("schema_version") == 1:
        data = _from_version_1(data)
    if isinstance(data, dict) and data.get("schema_version", SNAPSHOT_SCHEMA_VERSION) != (
        SNAPSHOT_SCHEMA_VERSION
    ):
        raise SnapshotError(
            f"schema_version: {data.get('schema_version')!r} is not supported "
            f"(this balancer reads version {SNAPSHOT_SCHEMA_VERSION})"
        )
    try:
        return _SNAPSHOT_ADAPTER.validate_python(data)
    except Exception as exc:  # pydantic.ValidationError, rendered with field paths
        raise SnapshotError(str(exc)) from exc


def _from_version_1(data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 snapshot as version 2: only the host capacity's name changed."""
    hosts = data.get("hosts")
    if isinstance(hosts, list):
        renamed = [
            {("disk_capacity_bytes" if k == "disk_bytes" else k): v for k, v in h.items()}
            if isinstance(h, dict)
            else h
            for h in hosts
        ]
        data = {**data, "hosts": renamed}
    return {**data, "schema_version": SNAPSHOT_SCHEMA_VERSION}


def snapshot_json_schema() -> dict[str, Any]:
    return _SNAPSHOT_ADAPTER.json_schema()


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return _PLAN_ADAPTER.dump_python(plan, mode="json")  # type: ignore[no-any-return]


def plan_from_dict(data: Any) -> Plan:
    return _PLAN_ADAPTER.validate_python(data)


@dataclass(frozen=True)
class MigrationRecord:
    """One migration as the journal keeps it: written before and after every state transition."""

    id: str
    vm: str
    source: str
    target: str
    reason: Reason
    state: MoveState
    created_at: float
    updated_at: float
    vm_uuid: str = ""
    plan_id: int | None = None
    bandwidth_mib_s: int = 0
    copy_mode: CopyMode | None = None
    started_at: float | None = None
    finished_at: float | None = None
    predicted_bytes: int = 0
    backing_bytes: int = 0  # copied by the executor before the migration (storage streams)
    disk_bytes: int = 0  # copied by libvirt's disk mirror
    memory_bytes: int = 0  # RAM transferred
    downtime_ms: float | None = None
    outcome: Reason | None = None
    error_code: int | None = None  # libvirt virErrorNumber
    error_domain: int | None = None
    error_message: str | None = None
    detail: str = ""
    # What the move creates on the target, listed before it is created: volumes (files of storage
    # pools) and, from ``migrating`` on, the incoming domain libvirt defines there (its UUID).
    created_volumes: tuple[str, ...] = ()
    target_domain: str = ""
    removed_volumes: tuple[str, ...] = ()  # of created_volumes, those its cleanups removed
    epoch: int = 0  # the leader term that owns the record: only a writer holding that epoch may change it
    drain_id: int | None = None  # the drain request this move serves (an undrain withdraws it while queued)

    @property
    def priority(self) -> int:
        return priority_of(self.reason)


@dataclass(frozen=True)
class TargetVolume:
    """A volume a move created on a target host, as the store keeps it until it is removed or handed over.

    ``provisional`` from just before the volume is created until it is proven: a backing file
    becomes ``verified`` (its content is complete and equal to the source's: ``sha256``,
    ``length``, ``capacity`` and the ``mtime`` libvirt reported then); a VM's disk stops being
    listed once the VM runs on it. ``record_id`` names the move that created or proved it.
    """

    host: str
    path: str
    kind: Literal["backing", "disk"]
    state: Literal["provisional", "verified"]
    record_id: str
    updated_at: float
    sha256: str = ""
    length: int = 0
    capacity: int = 0
    mtime: str = ""
