"""Policy comparison on a day of real VM CPU traces (balancer.sim): no balancing, threshold-greedy,
std-dev what-if (Watcher-like) and ours (``policy.plan`` with default PlanArgs).

50 hosts / 1,000 VMs, 5-minute ticks for 24 h of the PlanetLab trace of 2011-03-03 (Beloglazov & Buyya,
CCPE 24(13), 2012). Goal: ours has the least overloaded host-time (true load over the CPU mark) with
fewer than 0.2 migrations per VM per day and no ping-pong. Writes bench/results/policy_compare.json,
bench/results/policy_compare.md and docs/img/policy_compare.png (``--quick``: *_quick files under
bench/results/, nothing under docs/).

    python bench/policy_compare.py            # the full day (about 2 minutes on 2 cores)
    python bench/policy_compare.py --quick    # 10 hosts / 200 VMs / 2 h, CI smoke (seconds)
    python bench/policy_compare.py --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from balancer.executor.args import LimitArgs
from balancer.metrics.args import default_args
from balancer.policy import PlanArgs, plan
from balancer.sim import baselines, cluster, trace
from balancer.sim.args import SimArgs
from balancer.sim.compare import Variant, best_single_move_cut, mean_over_seeds, run_all

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GOAL_MIGRATIONS = 0.2
POLICIES = (
    Variant("none", baselines.no_balancing, note="(a) no balancing"),
    Variant("threshold-greedy", baselines.threshold_greedy, note="(b) largest VM off hosts over the mark"),
    Variant("stddev-whatif", baselines.stddev_whatif, note="(c) Watcher-like std-dev what-if, no margin"),
    Variant("ours", plan, note="(d) balancer.policy.plan, default PlanArgs"),
)
KEYS = (
    "overloaded_host_minutes",
    "imbalance_mean",
    "imbalance_p95",
    "migrations_per_vm_per_day",
    "gib_moved",
    "ping_pongs",
)


def cluster_facts(sim: SimArgs, tr: trace.Trace, hours: float) -> dict[str, Any]:
    """What the seeded cluster looks like: sizes, load level, initial imbalance, trace noise."""
    c = cluster.build(sim, tr)
    n = round(hours * 12)
    cores = c.cores[:, :n]
    placed = np.zeros((c.n_hosts, n))
    np.add.at(placed, c.placement, cores)
    load = cores.sum(axis=0) / c.host_cpus.sum()
    used_rows = trace.lag1_autocorrelation(tr.util[c.trace_rows])
    return {
        "vcpus_total": int(c.vcpus.sum()),
        "vcpus_per_core": round(float(c.vcpus.sum() / c.host_cpus.sum()), 2),
        "memory_allocated_share": round(float(c.memory.sum() / c.host_memory.sum()), 3),
        "vm_memory_gib_mean": round(float(c.memory.mean() / cluster.GIB), 2),
        "overlay_gib_mean": round(float(c.overlay.mean() / cluster.GIB), 2),
        "cpu_load_mean": round(float(load.mean()), 3),
        "cpu_load_hourly_min_max": [round(float(x), 3) for x in _hourly_range(load)],
        "initial_host_cpu_share_min_max": _min_max(placed.mean(axis=1) / c.host_cpus),
        "initial_host_memory_share_min_max": _min_max(c.host_memory_used() / c.host_memory),
        "trace_lag1_autocorrelation_median_all_rows": round(
            float(np.median(trace.lag1_autocorrelation(tr.util))), 3
        ),
        "trace_lag1_autocorrelation_median_vms": round(float(np.median(used_rows)), 3),
        "best_single_move_cut_at_t0": best_single_move_cut(sim, tr),
        "host_load_lag1_autocorrelation_median_initial": round(
            float(np.median(trace.lag1_autocorrelation(placed))), 3
        ),
    }


def _min_max(x: np.ndarray) -> list[float]:
    return [round(float(x.min()), 3), round(float(x.max()), 3)]


def _hourly_range(series: np.ndarray) -> tuple[float, float]:
    hours = series[: series.size // 12 * 12].reshape(-1, 12).mean(axis=1) if series.size >= 12 else series
    return float(hours.min()), float(hours.max())


def goal(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ours = table["ours"]
    others = {k: v for k, v in table.items() if k != "ours"}
    best_other = min(others, key=lambda k: others[k]["overloaded_host_minutes"])
    least = all(ours["overloaded_host_minutes"] < v["overloaded_host_minutes"] for v in others.values())
    return {
        "least_overloaded_host_time": least,
        "best_other_policy": best_other,
        "migrations_under_0_2_per_vm_day": ours["migrations_per_vm_per_day"] < GOAL_MIGRATIONS,
        "zero_ping_pongs": ours["ping_pongs"] == 0,
        "met": bool(
            least and ours["migrations_per_vm_per_day"] < GOAL_MIGRATIONS and ours["ping_pongs"] == 0
        ),
    }


def ratios(table: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    def r(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    o, n = table["ours"], table["none"]
    out: dict[str, float | None] = {
        "ours_vs_none_overload": r(o["overloaded_host_minutes"], n["overloaded_host_minutes"])
    }
    for k in ("threshold-greedy", "stddev-whatif"):
        out[f"ours_vs_{k}_overload"] = r(o["overloaded_host_minutes"], table[k]["overloaded_host_minutes"])
        out[f"ours_vs_{k}_gib"] = r(o["gib_moved"], table[k]["gib_moved"])
        out[f"ours_vs_{k}_migrations"] = r(
            o["migrations_per_vm_per_day"], table[k]["migrations_per_vm_per_day"]
        )
    return out


def markdown(table: dict[str, dict[str, Any]], facts: dict[str, Any], meta: dict[str, Any]) -> str:
    f, ours = facts, table["ours"]
    pct = "{:.0%}".format
    lines = [
        f"### Policy comparison: {meta['hosts']} hosts, {meta['vms']} VMs, {meta['hours']:g} h "
        f"of PlanetLab trace (seed {meta['seed']})",
        "",
        "| policy | overloaded host·min (share) | vs none | saturated host·min | imbalance mean / p95 "
        "| migrations / VM / day | GiB moved | ping-pongs | plan s mean / max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    none = table["none"]["overloaded_host_minutes"] or 1.0
    for name, s in table.items():
        over = s["overloaded_host_minutes"]
        lines.append(
            f"| {name} | {over:.0f} ({s['overloaded_share_of_host_time']:.2%}) | {over / none:.2f}× "
            f"| {s['saturated_host_minutes']:.0f} | {s['imbalance_mean']:.3f} / {s['imbalance_p95']:.3f} "
            f"| {s['migrations_per_vm_per_day']:.3f} | {s['gib_moved']:.0f} | {s['ping_pongs']} "
            f"| {s['plan_seconds_mean']:.3f} / {s['plan_seconds_max']:.3f} |"
        )
    cpu, mem = f["initial_host_cpu_share_min_max"], f["initial_host_memory_share_min_max"]
    hourly = f["cpu_load_hourly_min_max"]
    skips = ours.get("plan_skips", {})
    by_goal = ", ".join(f"{n} {goal}" for goal, n in sorted(ours.get("moves_planned", {}).items()))
    lines += [
        "",
        f"Cluster: {f['vcpus_per_core']} vCPUs per core, {pct(f['memory_allocated_share'])} of memory "
        f"allocated, mean CPU load {pct(f['cpu_load_mean'])} (hourly {pct(hourly[0])}–{pct(hourly[1])}); "
        f"hosts' day-mean CPU share under the initial placement {pct(cpu[0])}–{pct(cpu[1])}, memory "
        f"{pct(mem[0])}–{pct(mem[1])}. Median lag-1 autocorrelation: "
        f"{f['trace_lag1_autocorrelation_median_all_rows']} per VM (whole trace), "
        f"{f['host_load_lag1_autocorrelation_median_initial']} per host (initial placement).",
        "",
        f"How ours got there (default PlanArgs): moves planned by goal: {by_goal or 'none'}; "
        f"the balance goal found no move worth its margin (`no_beneficial_move`; `min_improvement` "
        f"{pct(PlanArgs().policy.min_improvement)} of the imbalance) in "
        f"{skips.get('plan:no_beneficial_move', 0)} of {meta['ticks']} ticks; at t0, the most imbalanced "
        f"moment, the best single move cut the imbalance by {pct(f['best_single_move_cut_at_t0'])} (a move "
        f"changes 2 of {meta['hosts']} hosts' loads, which is why a 10 % margin would never let balancing "
        f"run). {pct(ours['overload_seen_share'] or 0.0)} of ours' overloaded host-time was on a host "
        "whose smoothed load was over the mark at the start of the interval; the rest is noise around a "
        "mean under the mark (per-VM lag-1 autocorrelation "
        f"{f['trace_lag1_autocorrelation_median_all_rows']}). Only two things lower it: even means "
        "(balancing) and keeping bursty VMs apart, which ours does by planning each VM's CPU as its mean "
        f"plus {PlanArgs().policy.cpu_burst_sigmas:g} standard deviations (`cpu_burst_sigmas`).",
        "",
        "Overloaded host-time is measured on the true per-interval trace load (plus migration overhead), "
        "not on the smoothed load the planners see. Trace: " + trace.CITATION + ".",
        "",
        "![overloaded host-time and imbalance over the day](img/policy_compare.png)",
    ]
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for r in results:
        over = np.array(r["series"]["over_mark_host_min"])
        imb = np.array(r["series"]["imbalance"])
        hours = np.arange(over.size) / 12.0
        k = 12 if over.size >= 24 else 1
        hourly = np.convolve(over, np.ones(k), mode="full")[: over.size]  # trailing hour
        ax1.plot(hours, hourly, label=r["variant"])
        ax2.plot(hours, imb, label=r["variant"], linewidth=0.9)
    ax1.set_ylabel("overloaded host·min\n(trailing hour)" if k == 12 else "overloaded host·min")
    ax2.set_ylabel("imbalance (weighted std-dev)")
    ax2.set_xlabel("hour of the trace day")
    ax1.legend()
    ax1.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 hosts / 200 VMs / 2 h, for CI")
    ap.add_argument("--seeds", default="1", help="comma-separated seeds; the table shows the first")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    sim = SimArgs(hosts=10, vms=200) if a.quick else SimArgs()  # quick: the same 20 VMs per host
    hours = 2.0 if a.quick else 24.0
    seeds = [int(s) for s in a.seeds.split(",")]
    started = time.perf_counter()
    tr = trace.load()
    facts = cluster_facts(sim.model_copy(update={"seed": seeds[0]}), tr, hours)
    results = run_all(POLICIES, sim, hours, seeds, workers=a.workers)
    wall = time.perf_counter() - started
    first = [r for r in results if r["seed"] == seeds[0]]
    table = {r["variant"]: r["summary"] for r in first}
    meta = {"hosts": sim.hosts, "vms": sim.vms, "hours": hours, "seed": seeds[0], "ticks": round(hours * 12)}
    out = {
        "benchmark": "policy_compare",
        "quick": a.quick,
        **meta,
        "seeds": seeds,
        "citation": trace.CITATION,
        "sim_args": sim.model_dump(mode="json"),
        "plan_args": {k: getattr(PlanArgs(), k).model_dump(mode="json") for k in ("thresholds", "policy")},
        "limits": LimitArgs.model_validate({}).model_dump(mode="json", by_alias=True),
        "collection": default_args().model_dump(mode="json"),
        "cluster": facts,
        "policies": table,
        "notes": {r["variant"]: r["note"] for r in first},
        "goal": goal(table),
        "ratios": ratios(table),
        "over_seeds": mean_over_seeds(results, KEYS) if len(seeds) > 1 else None,
        "series": {r["variant"]: r["series"] for r in first},
        "observed_imbalance": {r["variant"]: r["observed_imbalance"] for r in first},
        "wall_seconds": round(wall, 1),
        "run_wall_seconds": {f"{r['variant']}@{r['seed']}": r["wall_seconds"] for r in results},
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "python": platform.python_version(),
    }
    suffix = "_quick" if a.quick else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"policy_compare{suffix}.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / f"policy_compare{suffix}.md").write_text(markdown(table, facts, meta))
    png = RESULTS / "policy_compare_quick.png" if a.quick else ROOT / "docs" / "img" / "policy_compare.png"
    plot(first, png, f"{sim.hosts} hosts, {sim.vms} VMs, PlanetLab 2011-03-03, seed {seeds[0]}")
    _print(table, out, png)


def _print(table: dict[str, dict[str, Any]], out: dict[str, Any], png: Path) -> None:
    print(
        f"{'policy':18} {'over host·min':>13} {'vs none':>8} {'imb mean':>9} {'imb p95':>8} "
        f"{'migr/VM/d':>10} {'GiB':>8} {'ping-pong':>9} {'plan s max':>10}"
    )
    none = table["none"]["overloaded_host_minutes"] or 1.0
    for name, s in table.items():
        print(
            f"{name:18} {s['overloaded_host_minutes']:13.0f} {s['overloaded_host_minutes'] / none:7.2f}× "
            f"{s['imbalance_mean']:9.4f} {s['imbalance_p95']:8.4f} {s['migrations_per_vm_per_day']:10.3f} "
            f"{s['gib_moved']:8.0f} {s['ping_pongs']:9d} {s['plan_seconds_max']:10.3f}"
        )
    print("ratios:", json.dumps(out["ratios"]))
    print("goal:", json.dumps(out["goal"]))
    if out["over_seeds"]:
        for name, agg in out["over_seeds"].items():
            lo, hi = agg["overloaded_host_minutes_min"], agg["overloaded_host_minutes_max"]
            print(
                f"  {name:18} over {agg['seeds']:.0f} seeds: overloaded host·min "
                f"{agg['overloaded_host_minutes']:.0f} [{lo:.0f}–{hi:.0f}], migrations/VM/day "
                f"{agg['migrations_per_vm_per_day']:.3f}, ping-pongs {agg['ping_pongs']:.1f}"
            )
    suffix = "_quick" if out["quick"] else ""
    print(f"wall {out['wall_seconds']} s; wrote bench/results/policy_compare{suffix}.json/.md and {png}")


if __name__ == "__main__":
    main()
