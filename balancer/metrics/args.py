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
