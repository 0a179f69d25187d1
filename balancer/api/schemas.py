"""Request and response bodies of the HTTP API (and of ``balancer ... --json``), as pydantic models.

Units as in balancer.model: bytes, cores, epoch seconds. Enum-typed fields carry the stable codes of
balancer.reasons and the store's states, so the OpenAPI document lists every value a client can see.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from balancer.errors import ErrorCode
from balancer.model import CopyMode, HostState, MoveState
from balancer.reasons import Reason
from balancer.store.records import Automation, DrainState, MoveStatus, PlanStatus

MAX_DEADLINE_SECONDS = 366 * 86400.0
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
NOTE_TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"  # a note may hold newlines and tabs, no other control character
PATTERN_MEANING = {
    PRINTABLE: "must not contain control characters",
    NOTE_TEXT: "must not contain control characters (newlines and tabs are allowed)",
}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --------------------------------------------------------------------------- errors
class Problem(_Out):
    """One thing wrong with a request: which field, the value sent, and what is allowed."""

    field: str = Field(description="The field, query parameter or path part, e.g. `host` or `limit`.")
    value: Any = Field(None, description="The value that was sent (absent when the field was missing).")
    message: str = Field(description="What is wrong and what is allowed.")


class ErrorOut(_Out):
    """Every error: a stable ``code`` to act on (balancer.errors.ErrorCode; the API's description lists
    each with its status) and a ``detail`` for people, whose wording may change."""

    code: ErrorCode = Field(description="What went wrong, as a stable snake_case code.")
    detail: str = Field(description="What went wrong, for people: names the host, id or field.")


class ValidationOut(ErrorOut):
    """422 (``invalid_input``): the request is malformed or names something that does not exist;
    ``problems`` has one entry per field, ``detail`` the same in one line."""

    problems: list[Problem]


class LeaderConflictOut(ErrorOut):
    """409 from a migrate or an abort: the state refuses it (``migration_finished``, ``vm_busy``, ...),
    or only the leader can do it (``not_leader``, with ``leader`` and ``leader_url``)."""

    leader: str | None = Field(
        None, description="Holder of the leader lease (`host/pid/id@api-url`); null if none."
    )
    leader_url: str | None = Field(None, description="The leader's API URL to retry at; null if unknown.")


# --------------------------------------------------------------------------- health
class Health(_Out):
    status: Literal["ok"] = "ok"
    version: str


class Readiness(_Out):
    """Ready when a tick completed within 3 collection intervals and the store answers."""

    ready: bool
    problems: list[str] = Field(description="Why the service is not ready; empty when it is.")
    leader: bool = Field(description="This instance holds the leader lease (it plans and migrates).")
    epoch: int | None = Field(None, description="The leader term this instance holds, if it leads.")
    last_tick: float | None = Field(description="When the last tick completed (epoch seconds).")
    last_tick_age_seconds: float | None
    last_error: str | None = Field(description="Error of the last failed tick, cleared by a good one.")


# --------------------------------------------------------------------------- cluster
class Load(_Out):
    """Demand of the host's VMs over its usable capacity (1.0 = full)."""

    cpu: float
    memory: float


class HostOut(_Out):
    name: str
    state: HostState | Literal["unknown"] = Field(
        description="`unknown` until the service has observed the host (no completed collection yet)."
    )
    cpus: float | None = Field(description="Usable cores.")
    memory_bytes: int | None = Field(description="Usable memory.")
    disk_capacity_bytes: int | None = Field(
        description="Capacity of the storage that holds VM images (0 = unknown); not the VMs' disks."
    )
    disk_free_bytes: int | None
    load: Load | None
    vms: int = Field(description="VMs on the host.")
    vm_disk_bytes: int = Field(
        description="Bytes of the VMs' own disk images (what a drain copies at least)."
    )
    vm_memory_bytes: int = Field(description="Memory the VMs hold.")
    labels: dict[str, str]
    error: str | None = Field(description="Why the host is down (libvirt's text and code).")
    drain_id: int | None = Field(description="The open drain of the host, if any.")


class DiskOut(_Out):
    target: str = Field(description="Guest device, e.g. vda.")
    path: str
    format: str
    virtual_bytes: int
    allocated_bytes: int = Field(description="Bytes of the top image (an incremental copy moves these).")
    chain_bytes: int = Field(description="Bytes of the whole chain (a full copy moves at most these).")
    backing: list[str] = Field(description="Backing file paths, nearest first.")


class VMOut(_Out):
    name: str
    uuid: str
    host: str
    state: str = Field(description="libvirt state: running, paused, shutoff, ...")
    vcpus: int
    memory_bytes: int
    memory_used_bytes: int
    cpu_cores: float = Field(description="Smoothed cores used.")
    cpu_std_cores: float = Field(
        description="Standard deviation of its CPU over collection.spread_window samples; the planner "
        "counts cpu_cores + policy.cpu_burst_sigmas × this."
    )
    dirty_rate_bytes_s: float
    disk_allocated_bytes: int = Field(description="Allocated bytes of the VM's top images.")
    disks: list[DiskOut]
    exclude: bool = Field(description="Tagged never to be moved by the balancer.")
    pin_hosts: list[str]
    groups: list[str]
    persistent: bool
    migrating: bool
    migration_id: str | None = Field(
        None, description="The leader's unfinished migration of this VM (queued, running or adopted)."
    )
    cooldown_until: float | None = Field(
        None, description="Moved recently: the planner leaves it alone until then (policy.cooldown_minutes)."
    )
    quarantined_until: float | None = Field(
        None, description="Its last migration failed: left alone until then (policy.quarantine_minutes)."
    )


# --------------------------------------------------------------------------- plans
class CostOut(_Out):
    disk_bytes: int
    backing_bytes: int
    memory_bytes: int = Field(description="RAM including predicted re-sends.")
    total_bytes: int
    seconds: float = Field(description="Predicted duration at the bandwidth cap.")
    copy_mode: CopyMode
    converges: bool


class LoadChangeOut(_Out):
    before: dict[str, float] = Field(description="Load ratio per resource before the move.")
    after: dict[str, float]


class MoveOut(_Out):
    plan_id: int
    index: int = Field(description="Position in the plan; approve or reject it alone with this.")
    vm: str
    source: str
    target: str
    reason: Reason
    detail: str
    flags: list[Reason]
    after: list[str] = Field(
        description="VMs whose moves off the target must end before this one starts (they make its room)."
    )
    status: MoveStatus
    decided_by: str | None
    decided_at: float | None
    migration_id: str | None = Field(description="Journal id once the executor took the move.")
    cost: CostOut
    source_load: LoadChangeOut | None
    target_load: LoadChangeOut | None
    imbalance_before: float
    imbalance_after: float


class SkipOut(_Out):
    subject: Literal["vm", "host", "plan"]
    name: str
    reason: Reason
    detail: str


class PlanSummary(_Out):
    id: int
    status: PlanStatus
    automation: Automation
    created_at: float
    updated_at: float
    decided_by: str | None
    decided_at: float | None
    move_count: int
    skip_count: int
    moves_by_status: dict[str, int]
    predicted_bytes: int
    imbalance_before: float = Field(description="Std-dev of normalised load before the plan.")
    imbalance_after: float
    expires_at: float | None = Field(
        None, description="A proposal can be approved until then, unless the planner proposes it again."
    )


class PlanPreviewIn(BaseModel):
    """A dry run of the planner on the service's current view."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drain: list[str] = Field(
        default_factory=list, max_length=1000, description="Hosts to plan as if a drain were requested."
    )


class PlanOut(PlanSummary):
    moves: list[MoveOut]
    skips: list[SkipOut]
    resource_imbalance_before: dict[str, float]
    resource_imbalance_after: dict[str, float]
    overloaded_before: list[str]
    overloaded_after: list[str]


# --------------------------------------------------------------------------- migrations
class LibvirtErrorOut(_Out):
    code: int | None = Field(description="libvirt virErrorNumber.")
    domain: int | None
    message: str


class MigrationOut(_Out):
    id: str
    vm: str
    vm_uuid: str
    source: str
    target: str
    reason: Reason
    state: MoveState
    final: bool = Field(description="True once the state can no longer change.")
    outcome: Reason | None
    error: LibvirtErrorOut | None
    detail: str
    plan_id: int | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    bandwidth_mib_s: int
    copy_mode: CopyMode | None
    predicted_bytes: int
    backing_bytes: int
    disk_bytes: int
    memory_bytes: int
    downtime_ms: float | None
    epoch: int = Field(0, description="The leader term that owns the record.")
    drain_id: int | None = Field(None, description="The drain this move serves.")
    progress: ProgressNow | None = Field(
        None, description="Live progress of a running move, from the leader that runs it (else null)."
    )


class ProgressNow(_Out):
    """The executor's last poll of a running move (only the leader that runs it knows)."""

    phase: str = Field(description="copying_backing, disk or memory.")
    bytes_copied: int
    bytes_remaining: int
    rate_bytes_s: float
    elapsed_seconds: float
    memory_iteration: int


class MigrationCreate(BaseModel):
    """An operator's one-off migration: queued through the leader's admission like any planned move."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vm: str = Field(min_length=1, max_length=255, pattern=PRINTABLE, description="Domain name.")
    target: str = Field(min_length=1, max_length=63, description="A configured host.")
    source: str | None = Field(
        None, min_length=1, max_length=63, description="Where it runs (default: the last collection's)."
    )
    bandwidth_mib_s: int | None = Field(
        None, ge=1, le=100_000, description="Cap of this migration (default: limits.bandwidth_mib_s)."
    )
    full_copy: bool = Field(False, description="Copy whole disks (VIR_MIGRATE_NON_SHARED_DISK).")


class AbortOut(_Out):
    id: str
    message: str
    migration: MigrationOut = Field(description="The journal record when the abort was asked for.")


# --------------------------------------------------------------------------- drains
class DrainCreate(BaseModel):
    """Ask the service to empty a host (idempotent: an open drain of the host is returned as is)."""

    # strict: `"deadline_seconds": true` is no duration (lax pydantic read it as 1 s)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    host: str = Field(min_length=1, max_length=63, description="A configured host.")
    deadline_seconds: float | None = Field(
        None,
        gt=0,
        le=MAX_DEADLINE_SECONDS,
        allow_inf_nan=False,
        description="Seconds from now by which the host should be empty; shown as overdue after it.",
    )
    note: str = Field(
        "", max_length=1000, pattern=NOTE_TEXT, description="Why (a ticket, a person); kept with the drain."
    )


class BlockerOut(_Out):
    vm: str
    reason: Reason
    detail: str
    message: str = Field(description="The detail, else the reason code: what an operator must fix.")


class ProgressOut(_Out):
    """What the service last reported (each tick)."""

    vms_remaining: int
    bytes_remaining: int
    in_flight: list[str] = Field(description="VMs migrating off the host now.")
    done: int = Field(description="VMs moved off since the request.")
    failed: int = Field(description="Migrations off the host that failed since the request.")
    eta_seconds: float | None = Field(description="Predicted from the bandwidth caps; null if nothing moves.")
    blockers: list[BlockerOut] = Field(description="VMs that cannot move, with the planner's reason.")


class DrainOut(_Out):
    id: int
    host: str
    state: DrainState
    requested_by: str
    created_at: float
    updated_at: float
    deadline: float | None = Field(description="When the host should be empty (epoch seconds).")
    closed_at: float | None
    closed_by: str | None
    note: str
    progress: ProgressOut | None = Field(description="Null until the service reports once.")
    blocked: bool = Field(description="Open, nothing migrating, VMs left that cannot move.")
    overdue: bool = Field(description="Open and past its deadline.")
