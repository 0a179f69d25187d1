"""Knobs of migration execution (config sections ``limits`` and ``executor``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LimitArgs(BaseModel):
    """Concurrency and bandwidth limits; block migration is expensive, so the defaults are the peers'
    (1 and 1)."""

    global_: int | None = Field(
        None,
        alias="global",
        ge=1,
        le=1000,
        description="Migrations running at once in the cluster; null = min(5, hosts // 2), at least 1.",
    )
    per_source: int = Field(1, ge=1, le=100, description="Outgoing migrations per host at once.")
    per_target: int = Field(1, ge=1, le=100, description="Incoming migrations per host at once.")
    bandwidth_mib_s: int = Field(
        100, ge=1, le=100_000, description="Bandwidth cap of one migration (RAM and disk mirror), MiB/s."
    )
    host_bandwidth_mib_s: int = Field(
        200,
        ge=1,
        le=1_000_000,
        description="Budget per host: the caps of all migrations touching a host add up to at most this.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def global_limit(self, hosts: int) -> int:
        """The effective global limit for a cluster of ``hosts`` hosts."""
        if self.global_ is not None:
            return self.global_
        return max(1, min(5, hosts // 2))


class ExecutorArgs(BaseModel):
    """How one migration is carried out and watched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_seconds: float = Field(0.5, gt=0, le=10, description="Job-stats polling period.")
    completion_timeout_s_per_gib: float = Field(
        800.0, gt=0, description="Abort when a migration runs longer than this per GiB to copy."
    )
    completion_timeout_min_gib: float = Field(
        2.0, ge=0, description="The completion timeout is computed for at least this many GiB."
    )
    stall_iterations: int = Field(
        3,
        ge=1,
        le=100,
        description="Memory iterations without progress before a migration counts as stalled.",
    )
    on_stall: Literal["raise-downtime", "auto-converge", "abort"] = Field(
        "raise-downtime", description="What to do first when a migration does not converge."
    )
    downtime_steps_ms: tuple[int, ...] = Field(
        (100, 200, 300, 500), description="Allowed downtime raised step by step when not converging."
    )
    auto_converge: bool = Field(False, description="Start every migration with auto-converge.")
    post_copy: bool = Field(False, description="Allow post-copy when a migration does not converge.")
    tls: bool = Field(
        False, description="Encrypt migration streams (VIR_MIGRATE_TLS); needs libvirt TLS set up."
    )
    copy_mode: Literal["auto", "full"] = Field(
        "auto",
        description="auto: incremental copy onto a pre-created overlay when the backing file can be "
        "provided; "
        "full: always copy whole disks (NON_SHARED_DISK).",
    )
    memory_headroom_mib: int = Field(
        256, ge=0, description="Free memory the target must keep beyond the VM's memory."
    )
    source_cleanup: Literal["delete", "keep"] = Field(
        "delete", description="After a verified success, delete the source's disk volumes or keep them."
    )
    keep_source_minutes: float = Field(
        0.0, ge=0, description="With source_cleanup=delete, wait this long before deleting."
    )
    no_progress_seconds: float = Field(
        60.0,
        gt=0,
        description="Abort a migration whose transferred bytes have not grown for this long "
        "(e.g. the network between the hosts is cut).",
    )
    disk_headroom_mib: int = Field(
        0, ge=0, description="Free space a target storage pool must keep beyond the bytes copied into it."
    )
    backing_verify: Literal["sha256", "size"] = Field(
        "sha256",
        description="How much a backing file's copy on a target is checked. Whatever this says, a file "
        "is used only once proven complete: the executor records a copy complete only after it was "
        "streamed whole (and checked as below), an interrupted copy is never used, and a file it did "
        "not record itself (an image cache's) is compared with the source's by sha256 before use. "
        "sha256: also re-reads each copy on the target and compares it with the source's, and compares "
        "a recorded file with the source's by sha256 once per host and file while the service runs "
        "(costs a read of each; base images are immutable). size: trusts a recorded file while its "
        "length, capacity and modification time are unchanged, and checks a fresh copy by its length.",
    )
    settle_seconds: float = Field(
        30.0,
        gt=0,
        description="After a failed or aborted migration, wait this long for the target's incoming "
        "domain to go away before removing pre-created volumes (they are kept if it does not).",
    )
    recovery_wait_seconds: float = Field(
        600.0,
        gt=0,
        description="At start-up, wait this long for a migration job still running on a source "
        "(PEER2PEER keeps going without us) before reconciling it as needs_attention.",
    )
