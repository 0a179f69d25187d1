"""One simulated day: the real Collector, a planner, the SimExecutor, tick by tick, in simulated time.

Each tick does what ``service.core`` does: ``Collector.tick(now)`` (SimSource runs the cluster's clock to
``now``, migrations included, then the real window smooths the counters), then the planner with
``PlannerState(in_flight = queued + running moves, recent = moves finished within max(cooldown,
quarantine))``, then every planned move whose VM is not already queued or running is submitted.

Ticks are one trace sample apart (300 s). Before ``t0`` the collector is warmed up for ``window`` (or
``spread_window``, if longer) ticks on the day's last samples (the day repeats), without planning, so the
first plan already sees full windows; the figures cover ``[t0, t0 + hours)`` only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from balancer.executor.args import LimitArgs
from balancer.metrics.args import CollectionArgs, default_args
from balancer.metrics.collector import Collector
from balancer.model import Plan, PlannerState, Snapshot
from balancer.policy import PlanArgs
from balancer.sim.args import SimArgs
from balancer.sim.cluster import T0, SimCluster, build
from balancer.sim.executor import SimExecutor
from balancer.sim.score import Series, summarize
from balancer.sim.source import SimSource
from balancer.sim.trace import Trace

Planner = Callable[[Snapshot, PlannerState, PlanArgs, float], Plan]
Observer = Callable[[int, Snapshot, Plan, SimCluster], None]  # (tick, snapshot, plan, cluster) after submit


@dataclass
class RunResult:
    """Figures, per-interval series and timings of one run."""

    summary: dict[str, Any]
    series: Series
    observed_imbalance: list[float] = field(default_factory=list)  # what the planner saw, per tick
    plan_seconds: list[float] = field(default_factory=list)
    cluster: SimCluster | None = None
    executor: SimExecutor | None = None


def run(
    planner: Planner,
    sim: SimArgs,
    trace: Trace,
    hours: float = 24.0,
    plan_args: PlanArgs | None = None,
    limits: LimitArgs | None = None,
    collection: CollectionArgs | None = None,
    t0: float = T0,
    observe: Observer | None = None,
    measure_cpu_high: float | None = None,
) -> RunResult:
    """Simulate ``hours`` of the trace under ``planner``; deterministic for ``sim.seed``.

    Overload is measured against ``measure_cpu_high`` × cores (default: the planner's own ``cpu_high``),
    so a variant that plans to a lower mark can still be scored against the same one.
    """
    plan_args = plan_args or PlanArgs()
    limits = limits or LimitArgs.model_validate({})
    collection = collection or default_args()
    step = trace.sample_seconds
    ticks = round(hours * 3600.0 / step)
    if not 0 < ticks <= trace.samples:
        raise ValueError(f"hours={hours}: the trace holds 1 to {trace.samples} ticks of {step:g} s")
    warm = max(collection.window, collection.spread_window)
    cpu_high = plan_args.thresholds.cpu_high if measure_cpu_high is None else measure_cpu_high
    cluster = build(sim, trace, t0, cpu_high, start=t0 - warm * step)
    executor = SimExecutor(cluster, limits, resend_cap=plan_args.policy.memory_resend_cap)
    collector = Collector(SimSource(cluster), collection)
    history = max(plan_args.policy.cooldown_minutes, plan_args.policy.quarantine_minutes) * 60.0
    observed: list[float] = []
    plan_seconds: list[float] = []
    seen_hot = np.zeros((ticks, cluster.n_hosts), dtype=bool)
    mark = cpu_high * cluster.host_cpus
    skips: Counter[str] = Counter()
    planned: Counter[str] = Counter()
    for k in range(-warm, ticks + 1):
        now = t0 + k * step
        snap = collector.tick(now)
        if not 0 <= k < ticks:
            continue
        for h in snap.hosts:
            i = cluster.host_index[h.name]
            seen_hot[k, i] = bool(h.cpu_history) and h.cpu_history[-1] > mark[i]
        state = PlannerState(in_flight=executor.pending_moves(), recent=executor.recent(now - history))
        started = time.perf_counter()
        plan = planner(snap, state, plan_args, now)
        plan_seconds.append(time.perf_counter() - started)
        observed.append(plan.imbalance_before)
        skips.update(f"{x.subject}:{x.reason.value}" for x in plan.skips if x.subject != "vm")
        planned.update(m.reason.value for m in plan.moves)
        busy = executor.busy_vms()
        executor.submit([m for m in plan.moves if m.vm not in busy], plan_id=k)
        if observe is not None:
            observe(k, snap, plan, cluster)
    collector.close()
    weights = np.array([plan_args.policy.cpu_weight, plan_args.policy.memory_weight], dtype=np.float64)
    records = [*executor.finished, *executor.in_flight(), *executor.queued()]
    summary, series = summarize(cluster, records, ticks, weights, seen_hot)
    summary["moves_planned"] = dict(sorted(planned.items()))
    summary["plan_skips"] = dict(sorted(skips.items()))
    summary["still_running_or_queued_at_end"] = len(executor.running) + len(executor.queue)
    summary["admission_waits"] = {r.value: n for r, n in sorted(executor.waits.items())}
    summary["plan_seconds_mean"] = round(float(np.mean(plan_seconds)), 4)
    summary["plan_seconds_p95"] = round(float(np.percentile(plan_seconds, 95)), 4)
    summary["plan_seconds_max"] = round(float(np.max(plan_seconds)), 4)
    return RunResult(summary, series, observed, plan_seconds, cluster, executor)
