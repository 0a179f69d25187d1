"""The day-start case (issue 15): why a policy may leave the cluster less balanced in the first hours.

The simulator warms the collector up on the samples before ``t0``; for a day that starts at the trace's
first sample those are the day's last samples (the day repeats), a history that never preceded its
start. This benchmark measures what that does, on the tune half of the VMs (trace.halves), 25 hosts /
500 VMs, for ours, ours with the std-dev objective and the std-dev what-if, with the day as recorded
(shift 0) and started 2 h later (shift 24 samples: warmed up on the real 2 h before):

* prediction error per tick: per VM, |25-min smoothed mean − its real mean over the next hour| and the
  same for ours' forecast level; per host, |Σ smoothed means − Σ real means| ÷ cores;
* the first 2 h of each run: overloaded host·min, migrations started, mean std-dev of true CPU load, and
  what the balance moves of those 2 h really did (sim/diagnostics.py).

Writes bench/results/day_start.json and day_start.md.

    python bench/day_start.py            # seeds 1,2,3 (a few minutes)
    python bench/day_start.py --quick    # seed 1, 4 h, prediction errors only for shift 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from balancer.model import Plan, Snapshot
from balancer.policy import PlanArgs, plan
from balancer.policy.args import PolicyArgs
from balancer.policy.forecast import Forecast
from balancer.sim import baselines, trace
from balancer.sim.args import SimArgs
from balancer.sim.cluster import SimCluster
from balancer.sim.diagnostics import TickRecorder, hindsight, summarize_values
from balancer.sim.run import Planner, run

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
FIRST = 24  # ticks: the first 2 h
SHOWN = 24  # prediction errors shown tick by tick up to here; later ticks as one mean
POLICIES: dict[str, tuple[Planner, PlanArgs]] = {
    "ours": (plan, PlanArgs()),
    "ours balance_objective=imbalance": (plan, PlanArgs(policy=PolicyArgs(balance_objective="imbalance"))),
    "stddev-whatif": (baselines.stddev_whatif, PlanArgs()),
}


class PredictionErrors:
    """A run observer: every ``every`` ticks, how far the planner's picture is from the next hour."""

    def __init__(self, every: int = 6) -> None:
        self.every = every
        self.rows: dict[int, dict[str, float]] = {}

    def __call__(self, k: int, snap: Snapshot, p: Plan, c: SimCluster) -> None:
        if k % self.every:
            return
        idx = np.array([c.vm_index[v.name] for v in snap.vms])
        hosts = np.array([c.host_index[v.host] for v in snap.vms])
        cols = np.arange(k, k + 12) % c.cores.shape[1]
        real = c.cores[idx][:, cols].mean(axis=1)
        smoothed = np.array([v.cpu_cores for v in snap.vms])
        level = Forecast.of(snap.vms).level
        host_real = np.bincount(hosts, real, c.n_hosts)
        self.rows[k] = {
            "vm_smoothed_abs_error": float(np.abs(smoothed - real).mean()),
            "vm_forecast_abs_error": float(np.abs(level - real).mean()),
            "host_smoothed_abs_error": float(
                (np.abs(np.bincount(hosts, smoothed, c.n_hosts) - host_real) / c.host_cpus).mean()
            ),
            "host_forecast_abs_error": float(
                (np.abs(np.bincount(hosts, level, c.n_hosts) - host_real) / c.host_cpus).mean()
            ),
        }


def one(name: str, seed: int, shift: int, hours: float, tr: trace.Trace) -> dict[str, Any]:
    planner, args = POLICIES[name]
    rec, errors = TickRecorder(), PredictionErrors()

    def observe(k: int, snap: Snapshot, p: Plan, c: SimCluster) -> None:
        rec(k, snap, p, c)
        errors(k, snap, p, c)

    day = trace.shifted(tr, shift) if shift else tr
    r = run(planner, SimArgs(hosts=25, vms=500, seed=seed), day, hours, args, observe=observe)
    over = np.array(r.series.over_mark_host_min)
    sigma = np.array(r.series.cpu_sigma)
    started = np.array(r.series.migrations_started)
    first = summarize_values(hindsight(rec, r), first_ticks=FIRST)["first"]
    return {
        "policy": name,
        "seed": seed,
        "shift": shift,
        "overloaded_host_minutes": r.summary["overloaded_host_minutes"],
        "first_2h_overloaded_host_minutes": round(float(over[:FIRST].sum()), 1),
        "first_2h_migrations_started": int(started[:FIRST].sum()),
        "first_2h_cpu_sigma_mean": round(float(sigma[:FIRST].mean()), 4),
        "first_2h_balance_moves": first,
        "prediction_errors": errors.rows,
    }


def markdown(runs: list[dict[str, Any]]) -> str:
    ours = [r for r in runs if r["policy"] == "ours"]
    lines = [
        "### The day-start case (tune half of the VMs, 25 hosts / 500 VMs)",
        "",
        "Prediction error of the planner's picture, mean over seeds (ours' runs): per VM, cores; per host, "
        "share of its cores; against the real mean of the next hour.",
        "",
        "| shift | tick | VM: smoothed mean / forecast | host: Σ smoothed / Σ forecast |",
        "|---:|---:|---:|---:|",
    ]
    for shift in sorted({r["shift"] for r in ours}):
        rs = [r for r in ours if r["shift"] == shift]
        ticks = sorted(rs[0]["prediction_errors"], key=int)
        early = [k for k in ticks if int(k) <= SHOWN]
        for k in [*early, "later"]:
            keys = [k] if k != "later" else [t for t in ticks if int(t) > SHOWN]
            if not keys:
                continue
            e = {
                m: np.mean([r["prediction_errors"][t][m] for r in rs for t in keys])
                for m in rs[0]["prediction_errors"][ticks[0]]
            }
            label = k if k != "later" else f"{SHOWN + 1}–{ticks[-1]} (mean)"
            lines.append(
                f"| {shift} | {label} | {e['vm_smoothed_abs_error']:.3f} / {e['vm_forecast_abs_error']:.3f} "
                f"| {e['host_smoothed_abs_error']:.3f} / {e['host_forecast_abs_error']:.3f} |"
            )
    lines += [
        "",
        "First 2 h of each run (balance moves scored by sim/diagnostics.py over the 2 h after each):",
        "",
        "| shift | seed | policy | overloaded host·min, first 2 h / day | migrations started, first 2 h "
        "| mean σ of true CPU load, first 2 h | real σ cut per balance move | balance moves that balanced |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        f = r["first_2h_balance_moves"]
        cut = f.get("cpu_sigma_cut_mean")
        share = f.get("balanced_share")
        lines.append(
            f"| {r['shift']} | {r['seed']} | {r['policy']} | {r['first_2h_overloaded_host_minutes']:.0f} / "
            f"{r['overloaded_host_minutes']:.0f} | {r['first_2h_migrations_started']} "
            f"| {r['first_2h_cpu_sigma_mean']:.4f} | {'–' if cut is None else f'{cut:+.4f}'} "
            f"| {'–' if share is None else f'{share:.0%}'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 1,2,3; quick: 1)")
    a = ap.parse_args()
    seeds = [int(s) for s in (a.seeds or ("1" if a.quick else "1,2,3")).split(",")]
    shifts = (0,) if a.quick else (0, 24)
    hours = 4.0 if a.quick else 24.0
    started = time.perf_counter()
    tr = trace.halves(trace.load())["tune"]
    runs = [one(name, s, sh, hours, tr) for sh in shifts for s in seeds for name in POLICIES]
    out = {
        "benchmark": "day_start",
        "quick": a.quick,
        "seeds": seeds,
        "shifts": shifts,
        "hours": hours,
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    suffix = "_quick" if a.quick else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"day_start{suffix}.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / f"day_start{suffix}.md").write_text(markdown(runs))
    print(markdown(runs))
    print(f"wall {out['wall_seconds']} s; wrote bench/results/day_start{suffix}.json/.md")


if __name__ == "__main__":
    main()
