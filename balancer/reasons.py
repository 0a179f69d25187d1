"""Stable snake_case reason codes for every move, skip and outcome.

The codes are part of the public surface: they appear in plans (CLI, API),
the migration journal and as Prometheus label values. Never rename one;
add a new code instead.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a move was planned, a candidate skipped, or a migration ended as it did."""

    # -- why a move is planned ---------------------------------------------------------
    DRAIN = "drain"
    HOTSPOT = "hotspot"
    BALANCE = "balance"
    AFFINITY_REPAIR = "affinity_repair"
    MANUAL = "manual"
    MAKE_ROOM = "make_room"  # moves a VM off a target first so that a drain or relief move fits there

    # -- why a VM or host was considered and left alone --------------------------------
    COOLDOWN = "cooldown"
    QUARANTINED = "quarantined"
    PINNED = "pinned"
    EXCLUDED = "excluded"
    NO_FIT = "no_fit"
    NO_MEMORY = "no_memory"
    NO_CPU = "no_cpu"
    NO_DISK = "no_disk"
    ANTI_AFFINITY = "anti_affinity"
    AFFINITY = "affinity"
    LABEL_MISMATCH = "label_mismatch"
    WOULD_NOT_CONVERGE = "would_not_converge"
    NOT_BENEFICIAL = "not_beneficial"
    BUDGET_SPENT = "budget_spent"
    NOT_RUNNING = "not_running"
    IN_FLIGHT = "in_flight"
    HOST_DOWN = "host_down"
    NO_TARGET_HOSTS = "no_target_hosts"
    NO_BENEFICIAL_MOVE = "no_beneficial_move"
    BALANCED = "balanced"
    NOT_PERSISTED = "not_persisted"  # a host above its mark, but not for thresholds.hold_ticks ticks yet

    # -- pre-check failures (executor) ---------------------------------------------------
    TARGET_UNKNOWN = "target_unknown"
    TARGET_DOWN = "target_down"
    TARGET_IN_MAINTENANCE = "target_in_maintenance"
    SOURCE_DOWN = "source_down"
    SAME_HOST = "same_host"
    VM_NOT_FOUND = "vm_not_found"
    VM_NOT_ON_SOURCE = "vm_not_on_source"
    VM_ALREADY_ON_TARGET = "vm_already_on_target"
    TARGET_NO_MEMORY = "target_no_memory"
    TARGET_NO_DISK = "target_no_disk"
    HYPERVISOR_MISMATCH = "hypervisor_mismatch"
    VERSION_INCOMPATIBLE = "version_incompatible"
    CPU_INCOMPATIBLE = "cpu_incompatible"
    RULE_VIOLATION = "rule_violation"
    NO_STORAGE_POOL = "no_storage_pool"
    BACKING_UNAVAILABLE = "backing_unavailable"

    # -- how a migration ended ----------------------------------------------------------
    SUCCEEDED = "succeeded"
    MIGRATION_FAILED = "migration_failed"
    NOT_CONVERGING = "not_converging"
    COMPLETION_TIMEOUT = "completion_timeout"
    ABORTED_BY_OPERATOR = "aborted_by_operator"
    VERIFY_FAILED = "verify_failed"
    PROVISION_FAILED = "provision_failed"
    RECOVERED = "recovered"
    NEEDS_ATTENTION = "needs_attention"
    SHUTDOWN = "shutdown"

    # -- executor: why a queued move waits, and further pre-check / outcome codes ---------
    WAIT_GLOBAL_LIMIT = "wait_global_limit"
    WAIT_SOURCE_BUSY = "wait_source_busy"
    WAIT_TARGET_BUSY = "wait_target_busy"
    WAIT_BANDWIDTH = "wait_bandwidth"
    WAIT_FOR_ROOM = "wait_for_room"  # an earlier move must first take a VM off the target
    TARGET_DISK_EXISTS = "target_disk_exists"
    UNSUPPORTED_DISK = "unsupported_disk"
    NO_PROGRESS = "no_progress"
    SOURCE_STOPPED = "source_stopped"  # the VM stopped on the source mid-migration (its owner, a crash)

    # -- the control plane: why a move was withdrawn or handed over ------------------------
    DRAIN_CANCELLED = "drain_cancelled"  # an undrain withdrew the queued moves of its drain
    LEADER_CHANGED = "leader_changed"  # queued under an older leader term; the new leader re-plans
    VM_BUSY = "vm_busy"  # the VM already has an unfinished migration (queued, running or to reconcile)


#: Order in which the executor admits moves: lower runs first.
PRIORITY: dict[Reason, int] = {
    Reason.MANUAL: 0,
    Reason.DRAIN: 1,
    # before the moves that wait for it (``Move.after``), drains included: it is planned only when a VM
    # that must leave fits nowhere else
    Reason.MAKE_ROOM: 1,
    Reason.AFFINITY_REPAIR: 2,
    Reason.HOTSPOT: 3,
    Reason.BALANCE: 4,
}


def priority_of(reason: Reason) -> int:
    """Admission priority of a move planned for ``reason`` (0 is most urgent)."""
    return PRIORITY.get(reason, max(PRIORITY.values()) + 1)
