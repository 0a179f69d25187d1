"""Knobs of load collection (config section ``collection``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CollectionArgs(BaseModel):
    """How and how often hosts are polled, and how load is smoothed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_seconds: float = Field(
        60.0, gt=0, le=3600, description="Seconds between ticks (collect, plan, act)."
    )
    window: int = Field(
        5, ge=1, le=1000, description="Samples in the moving window that smooths load (1 = no smoothing)."
    )
    spread_window: int = Field(
        24,
        ge=0,
        le=10000,
        description="Samples over which each VM's CPU spread (std-dev) is measured; 0 = not measured.",
    )
    history: int = Field(
        12, ge=1, le=10000, description="Smoothed host samples kept in a Snapshot for persistence checks."
    )
    host_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="A host that does not answer within this is marked down for the tick."
    )
    reconnect_max_seconds: float = Field(
        60.0, gt=0, le=3600, description="Upper bound of the exponential backoff between reconnect attempts."
    )
    workers: int = Field(16, ge=1, le=512, description="Hosts polled concurrently.")
    reconnect_min_seconds: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="First delay before reconnecting to a host that failed; doubles per failure.",
    )
    dirty_rate_seconds: int = Field(
        default=0,
        ge=0,
        le=60,
        description="Seconds of a dirty-rate measurement started on each running VM per tick; 0 = off.",
    )


def default_args() -> CollectionArgs:
    """Every default. (``CollectionArgs()`` is the same, but mypy without pydantic's plugin rejects it.)"""
    return CollectionArgs.model_validate({})
