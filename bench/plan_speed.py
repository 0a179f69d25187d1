"""Planner speed on tight PlanetLab clusters (bench/tight.py), 1,000 and 10,000 hosts, beside the baselines.

    .venv/bin/python bench/plan_speed.py [--quick]

Sizes: huge (1,000 hosts / 30,000 VMs; hotspot, drain, both: 10-30 % of hosts over the CPU mark, 20
draining) and fleet (10,000 / 300,000; hotspot, both). ``plan()`` runs with the shipped defaults (marks 0.8 /
0.85, a hold of one tick); the threshold-greedy baseline with its move cap lifted; the std-dev what-if
for one move only, and not at 10,000 hosts: each of its moves scores every VM × host pair at once
(30 million cells at 1,000 hosts, 3 billion at 10,000: tens of GiB per array). Growth in the hot
hosts: on the first huge hotspot instance only the k hottest hosts have persisted (the others'
history is under the mark), k = 20, 40, 80, all.
Times are the process's CPU seconds (what a plan costs; on a shared machine the wall time also counts
waiting for a core) and wall seconds, with the load average. Prints one line per run and writes
bench/results/plan_speed.json; goals: ≤ 1 s at 1,000 / 30,000 and ≤ 15 s at 10,000 / 300,000.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from balancer.model import PlannerState, Snapshot  # noqa: E402
from balancer.policy import PlanArgs, plan  # noqa: E402
from balancer.policy.args import PolicyArgs  # noqa: E402
from balancer.sim.baselines import stddev_whatif, threshold_greedy  # noqa: E402
from bench.plan_quality import feasible, over_after  # noqa: E402
from bench.tight import ARGS, Instance, instance  # noqa: E402

MIB = 1 << 20
RUNS = [("huge", "hotspot"), ("huge", "drain"), ("huge", "both"), ("fleet", "hotspot"), ("fleet", "both")]
QUICK = [("medium", "both"), ("large", "both")]
GREEDY = PlanArgs(thresholds=ARGS.thresholds, policy=PolicyArgs(max_moves_per_tick=10_000))
WHATIF = PlanArgs(thresholds=ARGS.thresholds, policy=PolicyArgs(max_moves_per_tick=1))
WHATIF_MAX_HOSTS = 1_000
HOT_STEPS = (20, 40, 80)


def timed(planner: Any, snap: Snapshot, args: PlanArgs, repeats: int) -> tuple[float, Any, float]:
    """Median wall seconds, the plan, and median CPU seconds of the process (on a shared machine the
    CPU time is what the plan costs; the wall time also counts waiting for a core)."""
    times, cpu, p = [], [], None
    for _ in range(repeats):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        p = planner(snap, PlannerState(), args, 0.0)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(times)), p, float(np.median(cpu))


def measure(inst: Instance, repeats: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "instance": inst.name,
        "hosts": len(inst.snapshot.hosts),
        "vms": len(inst.snapshot.vms),
        "hot_hosts": inst.hot_hosts,
        "drained_hosts": inst.drained_hosts,
    }
    seconds, p, cpu = timed(plan, inst.snapshot, ARGS, repeats)
    gc.collect()
    tracemalloc.start()
    plan(inst.snapshot, PlannerState(), ARGS, 0.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reasons: dict[str, int] = {}
    for m in p.moves:
        reasons[m.reason.value] = reasons.get(m.reason.value, 0) + 1
    row["ours"] = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mib": peak / MIB,
        "feasible": feasible(inst, p),
        "over_after": len(over_after(inst, p)),
        "moves": len(p.moves),
        "moves_by_reason": reasons,
    }
    baselines = [("threshold_greedy", threshold_greedy, GREEDY)]
    if row["hosts"] <= WHATIF_MAX_HOSTS:
        baselines.append(("stddev_whatif", stddev_whatif, WHATIF))
    for name, planner, args in baselines:
        seconds, bp, cpu = timed(planner, inst.snapshot, args, 1)
        row[name] = {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "feasible": feasible(inst, bp),
            "over_after": len(over_after(inst, bp)),
            "moves": len(bp.moves),
        }
    return row


def hot_growth(inst: Instance) -> list[dict[str, Any]]:
    """Plan time when only the k hottest hosts have persisted over the mark (the rest just crossed it)."""
    snap = inst.snapshot
    ratio = {h.name: h.cpu_history[-1] / h.cpus for h in snap.hosts}
    hottest = sorted(ratio, key=lambda n: -ratio[n])
    out = []
    for k in (*HOT_STEPS, inst.hot_hosts):
        keep = set(hottest[:k])
        hosts = tuple(h if h.name in keep else replace(h, cpu_history=(0.0,)) for h in snap.hosts)
        seconds, p, cpu = timed(plan, replace(snap, hosts=hosts), ARGS, 3)
        out.append({"hot_hosts": k, "seconds": seconds, "cpu_seconds": cpu, "moves": len(p.moves)})
        print(
            f"  {k:4d} hot hosts persisted: plan {cpu:.3f} s CPU ({seconds:.3f} s wall), {len(p.moves)} moves"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100-host sizes only (seconds; CI smoke)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "plan_speed.json")
    opts = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} cores", flush=True)
    results = []
    for size, kind in QUICK if opts.quick else RUNS:
        t0 = time.perf_counter()
        inst = instance(size, kind, 0)
        build = time.perf_counter() - t0
        r = measure(inst, repeats=1 if size == "fleet" else 3)
        r["build_seconds"] = build
        results.append(r)
        o, g = r["ours"], r["threshold_greedy"]
        w = r.get("stddev_whatif")
        whatif = "not run" if w is None else f"{w['seconds']:.3f} s for one move"
        print(
            f"{inst.name:16s} {r['hosts']:6d} hosts {r['vms']:7d} VMs, {r['hot_hosts']} hot, "
            f"{r['drained_hosts']} draining: ours {o['cpu_seconds']:.3f} s CPU, {o['seconds']:.3f} s wall "
            f"(feasible {o['feasible']}, "
            f"{o['moves']} moves, peak {o['peak_mib']:.0f} MiB); threshold-greedy {g['seconds']:.3f} s "
            f"(feasible {g['feasible']}, {g['over_after']} hot after); std-dev what-if {whatif}",
            flush=True,
        )
    growth: list[dict[str, Any]] = []
    if not opts.quick:
        print("growth in the number of hot hosts (huge-hotspot-0):")
        growth = hot_growth(instance("huge", "hotspot", 0))
        x = np.log([g["hot_hosts"] for g in growth])
        y = np.log([g["cpu_seconds"] for g in growth])
        print(f"  time grows as hot_hosts^{np.polyfit(x, y, 1)[0]:.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                },
                "load_average_at_start": load,
                "load_average_at_end": os.getloadavg()[0],
                "quick": opts.quick,
                "results": results,
                "hot_growth": growth,
                "hot_growth_exponent": float(
                    np.polyfit(
                        np.log([g["hot_hosts"] for g in growth]),
                        np.log([g["cpu_seconds"] for g in growth]),
                        1,
                    )[0]
                )
                if len(growth) >= 2
                else None,
                "max_rss_mib": rss,
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"load average at start {load:.2f}, now {os.getloadavg()[0]:.2f}; max RSS {rss:.0f} MiB; "
        f"wrote {opts.out}"
    )
    if not opts.quick:
        print("goals (CPU seconds): ≤ 1 s at 1,000 / 30,000, ≤ 15 s at 10,000 / 300,000")


if __name__ == "__main__":
    main()
