"""Run named planner variants over simulated days (several seeds, in worker processes) and tabulate them.

A :class:`Variant` is a planner plus the PlanArgs and CollectionArgs it runs with; ``run_all`` runs
every (variant, seed) pair as its own deterministic simulation, ``workers`` at a time, and returns their
figures in input order, so the result does not depend on the number of workers.

``half`` ("tune" or "held_out", trace.halves) runs every job on that half of the day's VMs only: knobs
are chosen on "tune" and reported on "held_out", so no reported figure comes from VMs they were tuned on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from balancer.executor.args import LimitArgs
from balancer.metrics.args import CollectionArgs, default_args
from balancer.metrics.collector import Collector
from balancer.model import PlannerState
from balancer.policy import PlanArgs
from balancer.policy.args import PolicyArgs, ThresholdArgs
from balancer.sim import trace as trace_mod
from balancer.sim.args import SimArgs
from balancer.sim.baselines import stddev_whatif
from balancer.sim.cluster import T0, build
from balancer.sim.diagnostics import TickRecorder, hindsight, summarize_values, value_rows
from balancer.sim.run import Planner, run
from balancer.sim.source import SimSource


@dataclass(frozen=True)
class Variant:
    """A planner and the knobs it runs with; ``note`` says what differs from the defaults."""

    name: str
    planner: Planner
    plan_args: PlanArgs = field(default_factory=PlanArgs)
    collection: CollectionArgs = field(default_factory=default_args)
    note: str = ""


MEASURE_CPU_HIGH = ThresholdArgs().cpu_high  # every variant is scored against the default CPU mark


@dataclass(frozen=True)
class Job:
    variant: Variant
    sim: SimArgs
    hours: float
    limits: LimitArgs
    trace_path: str
    half: str | None = None
    diagnose: bool = False


def _one(job: Job) -> dict[str, Any]:
    started = time.perf_counter()
    trace = load_trace(Path(job.trace_path), job.half)
    v = job.variant
    recorder = TickRecorder() if job.diagnose else None
    result = run(
        v.planner,
        job.sim,
        trace,
        job.hours,
        v.plan_args,
        job.limits,
        v.collection,
        measure_cpu_high=MEASURE_CPU_HIGH,
        observe=recorder,
    )
    diagnostics: dict[str, Any] | None = None
    if recorder is not None:
        values = hindsight(recorder, result)
        diagnostics = {"balance_moves": summarize_values(values), "moves": value_rows(values)}
    return {
        "variant": v.name,
        "seed": job.sim.seed,
        "note": v.note,
        "summary": result.summary,
        "series": asdict(result.series),
        "observed_imbalance": [round(x, 5) for x in result.observed_imbalance],
        "diagnostics": diagnostics,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


def run_all(
    variants: Sequence[Variant],
    sim: SimArgs,
    hours: float,
    seeds: Sequence[int],
    limits: LimitArgs | None = None,
    workers: int = 2,
    trace_path: Path = trace_mod.PLANETLAB,
    half: str | None = None,
    diagnose: bool = False,
) -> list[dict[str, Any]]:
    """Figures of every variant on every seed (variant-major order), on ``half`` of the VMs if given;
    ``diagnose``: with each move's per-tick record and hindsight value (sim/diagnostics.py)."""
    limits = limits or LimitArgs.model_validate({})
    jobs = [
        Job(v, sim.model_copy(update={"seed": s}), hours, limits, str(trace_path), half, diagnose)
        for v in variants
        for s in seeds
    ]
    if workers <= 1:
        return [_one(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_one, jobs))


def load_trace(path: Path = trace_mod.PLANETLAB, half: str | None = None) -> trace_mod.Trace:
    """The trace at ``path``, or its ``half`` ("tune" / "held_out") of the VMs."""
    tr = trace_mod.load(path)
    if half is None:
        return tr
    halves = trace_mod.halves(tr)
    if half not in halves:
        raise ValueError(f"half={half!r}: allowed {sorted(halves)} or None")
    return halves[half]


def best_single_move_cut(sim: SimArgs, trace: trace_mod.Trace) -> float:
    """The largest relative imbalance cut any single move offers at t0, after a full smoothing window.

    That is the std-dev what-if's first move (the VM × target leaving the least imbalance). A balance
    move of ours must cut at least ``policy.min_improvement`` of the imbalance; since a move changes
    only two hosts' loads, this best cut shrinks roughly as 1 / hosts.
    """
    window = default_args().window
    step = trace.sample_seconds
    c = build(sim, trace, start=T0 - window * step)
    collector = Collector(SimSource(c))
    for k in range(-window, 1):
        snap = collector.tick(T0 + k * step)
    args = PlanArgs(policy=PolicyArgs(max_moves_per_tick=1))
    moves = stddev_whatif(snap, PlannerState(), args, T0).moves
    return round(1.0 - moves[0].imbalance_after / moves[0].imbalance_before, 4) if moves else 0.0


def mean_over_seeds(results: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per variant: the mean of each summary figure in ``keys`` over its seeds, plus min and max."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["variant"] for r in results):
        rows = [r["summary"] for r in results if r["variant"] == name]
        agg: dict[str, float] = {"seeds": len(rows)}
        for k in keys:
            vals = np.array([float(s[k]) for s in rows])
            agg[k] = round(float(vals.mean()), 4)
            agg[k + "_min"] = round(float(vals.min()), 4)
            agg[k + "_max"] = round(float(vals.max()), 4)
        out[name] = agg
    return out
