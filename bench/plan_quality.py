"""Planner quality: bytes (and moves) the planner copies ÷ the exact optimum (ILP, bench/exact.py).

    .venv/bin/python bench/plan_quality.py [--quick]

Instances (bench/exact.py ``random_instance``, seeded): hotspot relief on a *moderate* family (other
hosts 40-85 % of their marks) and a *tight* one (70-97 %: few targets, the hosts compete for them),
and drains; small (4-12 hosts, 20-60 VMs) and larger ones the solver still finishes within 60 s.
Balance is switched off (min_improvement 1.0) and the move budget lifted, as in the exact problem.
Prints a summary per family and writes bench/results/plan_quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from balancer.model import PlannerState  # noqa: E402
from balancer.policy import PlanArgs, plan  # noqa: E402
from balancer.policy.args import PolicyArgs  # noqa: E402
from balancer.reasons import Reason  # noqa: E402
from bench.exact import drain_optimum, hotspot_optimum, random_instance  # noqa: E402

ARGS = PlanArgs(policy=PolicyArgs(max_moves_per_tick=10_000, min_improvement=1.0))
FILL = {"moderate": (0.4, 0.85), "tight": (0.7, 0.97)}


def families(quick: bool) -> list[tuple[str, str, list[tuple[int, int, int, int]]]]:
    """(name, kind, [(seed, hosts, vms, hot)])."""
    n_small = 12 if quick else 100
    small = [(s, 4 + s % 9, 20 + (s * 7) % 41, 1 + s % 3) for s in range(n_small)]
    large = [(1000 + s, 30, 300, 4) for s in range(5)] + [(2000 + s, 60, 1200, 6) for s in range(3)]
    large = [] if quick else large
    drains = [(s, 6 + s % 7, 30 + (s * 11) % 51, 1 + s % 2) for s in range(6 if quick else 40)]
    drains += [] if quick else [(3000 + s, 40, 800, 2) for s in range(3)]
    return [
        ("hotspot-moderate", "hotspot", small + large),
        ("hotspot-tight", "hotspot", small + large),
        ("drain", "drain", drains),
    ]


def run_one(name: str, kind: str, seed: int, hosts: int, vms: int, hot: int) -> dict[str, object]:
    fill = FILL.get(name.split("-")[-1])
    snap = random_instance(seed, hosts, vms, kind=kind, hot=hot, fill=fill)
    t0 = time.perf_counter()
    p = plan(snap, PlannerState(), ARGS, 0.0)
    t_plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    solve = hotspot_optimum if kind == "hotspot" else drain_optimum
    exact = solve(snap, PlannerState(), ARGS, 0.0, limit_s=60)
    t_exact = time.perf_counter() - t0
    reason = Reason.HOTSPOT if kind == "hotspot" else Reason.DRAIN
    ours = [m for m in p.moves if m.reason == reason]
    stuck = [s.name for s in p.skips if s.subject == "host" and s.reason == Reason.NO_FIT]
    row: dict[str, object] = {
        "family": name,
        "seed": seed,
        "hosts": hosts,
        "vms": vms,
        "status": exact.status,
        "bytes": sum(m.cost.total_bytes for m in ours),
        "exact_bytes": exact.bytes,
        "moves": len(ours),
        "exact_moves": len(exact.moves),
        "unrelieved": stuck,
        "plan_seconds": t_plan,
        "exact_seconds": t_exact,
    }
    if exact.status == "optimal" and exact.bytes > 0 and not stuck:
        row["ratio"] = float(row["bytes"]) / exact.bytes  # type: ignore[arg-type]
        row["moves_ratio"] = len(ours) / max(len(exact.moves), 1)
    return row


def summary(rows: list[dict[str, object]]) -> dict[str, object]:
    ratios = np.array([r["ratio"] for r in rows if "ratio" in r], dtype=float)
    moves = np.array([r["moves_ratio"] for r in rows if "moves_ratio" in r], dtype=float)
    optimal = [r for r in rows if r["status"] == "optimal" and float(r["exact_bytes"]) > 0]  # type: ignore[arg-type]
    return {
        "instances": len(rows),
        "solved_optimally": len(optimal),
        "unrelieved_where_exact_relieves": sum(1 for r in optimal if r["unrelieved"]),
        "bytes_ratio_median": float(np.median(ratios)) if ratios.size else None,
        "bytes_ratio_p90": float(np.percentile(ratios, 90)) if ratios.size else None,
        "bytes_ratio_max": float(ratios.max()) if ratios.size else None,
        "within_10pct": int((ratios <= 1.10 + 1e-9).sum()),
        "moves_ratio_median": float(np.median(moves)) if moves.size else None,
        "plan_seconds_max": max(float(r["plan_seconds"]) for r in rows),  # type: ignore[arg-type]
        "exact_seconds_max": max(float(r["exact_seconds"]) for r in rows),  # type: ignore[arg-type]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a dozen small instances per family")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "plan_quality.json")
    opts = ap.parse_args()
    out: dict[str, object] = {"quick": opts.quick, "families": {}}
    for name, kind, instances in families(opts.quick):
        rows = [run_one(name, kind, *inst) for inst in instances]
        s = summary(rows)
        out["families"][name] = {"summary": s, "instances": rows}  # type: ignore[index]
        print(
            f"{name:17s} {s['solved_optimally']:3d}/{s['instances']:3d} solved; bytes ÷ optimum median "
            f"{s['bytes_ratio_median']:.3f}, p90 {s['bytes_ratio_p90']:.3f}, max {s['bytes_ratio_max']:.3f}; "
            f"{s['within_10pct']} within 10 %; not relieved where the optimum does: "
            f"{s['unrelieved_where_exact_relieves']}; moves ÷ optimum median {s['moves_ratio_median']:.2f}; "
            f"plan ≤ {s['plan_seconds_max']:.2f} s, ILP ≤ {s['exact_seconds_max']:.1f} s",
            flush=True,
        )
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {opts.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
