"""Figures of one simulated run: overload on the true load, imbalance, migrations, bytes, ping-pongs.

Definitions (every figure over the measured day ``[t0, t0 + hours)``):

* overloaded host-time: host·minutes during which a host's TRUE CPU load (its VMs' trace cores at that
  instant plus migration overhead; not the smoothed load the planners see) is above ``cpu_high`` × its
  cores; ``saturated`` the same above 100 % of its cores. Integrated exactly between events.
* imbalance: objective.py's definition (weighted std-dev over hosts of normalised cpu and memory load,
  cpu from the true load, memory = allocated VM memory), time-averaged over each 5-minute interval; the
  mean and p95 are over the intervals.
* migrations: succeeded migrations that finished within the day; per VM per day = that ÷ VMs ÷ days.
  GiB moved: their bytes (overlay + backing image + RAM with re-sends).
* ping-pong: a succeeded migration that brings a VM back to a host it left (a migration off that host
  finished) at most ``pingpong_seconds`` (1 h) earlier.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from balancer.model import MigrationRecord, MoveState
from balancer.policy import objective
from balancer.sim.cluster import GIB, SimCluster

PINGPONG_SECONDS = 3600.0


@dataclass(frozen=True)
class Series:
    """Per 5-minute interval of the day."""

    over_mark_host_min: list[float]
    imbalance: list[float]
    cpu_sigma: list[float]
    memory_sigma: list[float]
    migrations_started: list[int]


def ping_pongs(records: Sequence[MigrationRecord], window: float = PINGPONG_SECONDS) -> list[MigrationRecord]:
    """Succeeded migrations that return a VM to a host it left within ``window`` seconds."""
    left: dict[str, list[tuple[str, float]]] = defaultdict(list)  # vm → (host it left, when)
    out = []
    done = [r for r in records if r.state == MoveState.SUCCEEDED and r.finished_at is not None]
    for r in sorted(done, key=lambda r: (r.finished_at or 0.0, r.id)):
        at = r.finished_at or 0.0
        if any(h == r.target and at - t <= window for h, t in left[r.vm]):
            out.append(r)
        left[r.vm].append((r.source, at))
    return out


def summarize(
    cluster: SimCluster,
    records: Sequence[MigrationRecord],
    intervals: int,
    weights: np.ndarray,
    seen_hot: np.ndarray | None = None,
) -> tuple[dict[str, Any], Series]:
    """The run's figures and its per-interval series (``intervals`` measured 5-minute intervals).

    ``seen_hot`` (intervals, H): whether the planner's snapshot at the start of each interval showed the
    host's smoothed CPU above the mark; it yields the share of overloaded host-time the planner could see.
    """
    m = cluster.meter
    cov = np.maximum(m.covered[:intervals], 1e-12)
    sigma = m.sigma[:intervals] / cov[:, None]
    imb = np.asarray(objective.combine(sigma, weights), dtype=np.float64)
    t0, end = cluster.t0, cluster.t0 + intervals * cluster.sample_seconds
    done = [
        r
        for r in records
        if r.state == MoveState.SUCCEEDED and r.finished_at is not None and t0 <= r.finished_at <= end
    ]
    started = np.zeros(intervals, dtype=np.int64)
    for r in records:
        if r.started_at is not None and r.state == MoveState.SUCCEEDED and t0 <= r.started_at < end:
            started[cluster.interval(r.started_at)] += 1
    days = intervals * cluster.sample_seconds / 86400.0
    moved = sum(r.disk_bytes + r.backing_bytes + r.memory_bytes for r in done)
    seconds = [(r.finished_at or 0.0) - (r.started_at or 0.0) for r in done]
    waits = [(r.started_at or 0.0) - r.created_at for r in done]
    per_host = m.over_mark[:intervals]
    over = per_host.sum(axis=1) / 60.0
    summary = {
        "overloaded_host_minutes": round(float(over.sum()), 1),
        "overloaded_share_of_host_time": round(float(over.sum() / (cluster.n_hosts * intervals * 5.0)), 5),
        "overload_seen_share": (
            round(float(per_host[seen_hot].sum() / max(per_host.sum(), 1e-12)), 4)
            if seen_hot is not None
            else None
        ),
        "saturated_host_minutes": round(float(m.over_cores[:intervals].sum() / 60.0), 1),
        "imbalance_mean": round(float(imb.mean()), 5),
        "imbalance_p95": round(float(np.percentile(imb, 95)), 5),
        "cpu_sigma_mean": round(float(sigma[:, 0].mean()), 5),
        "memory_sigma_mean": round(float(sigma[:, 1].mean()), 5),
        "migrations": len(done),
        "migrations_per_vm_per_day": round(len(done) / cluster.n_vms / days, 4),
        "gib_moved": round(moved / GIB, 1),
        "ping_pongs": len(ping_pongs(done)),
        "failed_or_skipped": sum(1 for r in records if r.state in (MoveState.FAILED, MoveState.ABORTED)),
        "migration_seconds_mean": round(float(np.mean(seconds)), 1) if seconds else 0.0,
        "queue_wait_seconds_mean": round(float(np.mean(waits)), 1) if waits else 0.0,
    }
    series = Series(
        over_mark_host_min=[round(float(x), 3) for x in over],
        imbalance=[round(float(x), 5) for x in imb],
        cpu_sigma=[round(float(x), 5) for x in sigma[:, 0]],
        memory_sigma=[round(float(x), 5) for x in sigma[:, 1]],
        migrations_started=[int(x) for x in started],
    )
    return summary, series
