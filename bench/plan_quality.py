"""Planner quality on tight PlanetLab clusters (bench/tight.py) against the exact optimum and two baselines.

    .venv/bin/python bench/plan_quality.py [--quick] [--solver cpsat|highs]

Per size (small 8/60, medium 20/200, large 100/1,000) and kind (hotspot, drain, both): ``plan()`` with the
shipped defaults (marks 0.8 / 0.85, a hold of one tick), the threshold-greedy and std-dev what-if
baselines (balancer/sim/baselines.py, their move cap lifted), and the exact minimum-bytes plan
(bench/exact.py: relief and drains together, any VM may move, moves orderable within the marks).

A plan is *feasible* when no host is over a mark afterwards and every draining host is empty. Bytes
compared with the optimum are those of the relief and drain work (reasons hotspot, drain, make_room):
balance moves (an optional improvement the optimum does not make) are counted apart.
Prints a summary per family and writes bench/results/plan_quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from balancer.model import HostState, Plan, PlannerState  # noqa: E402
from balancer.policy import PlanArgs, plan  # noqa: E402
from balancer.policy.args import PolicyArgs  # noqa: E402
from balancer.reasons import Reason  # noqa: E402
from balancer.sim.baselines import stddev_whatif, threshold_greedy  # noqa: E402
from bench.exact import optimum  # noqa: E402
from bench.tight import ARGS, KINDS, Instance, family, instance  # noqa: E402

COUNTS = {"small": 10, "medium": 6, "large": 3}
TICK_S = 1.0  # the planning budget an exact repair would have (the goal at 1,000 hosts)
QUICK = {"small": 2}
WORK = (Reason.HOTSPOT, Reason.DRAIN, Reason.MAKE_ROOM)
#: the baselines' own cap (policy.max_moves_per_tick) lifted: a cap would only make them fail more
UNCAPPED = PlanArgs(thresholds=ARGS.thresholds, policy=PolicyArgs(max_moves_per_tick=10_000))
PLANNERS = {
    "ours": (plan, ARGS),
    "threshold_greedy": (threshold_greedy, UNCAPPED),
    "stddev_whatif": (stddev_whatif, UNCAPPED),
}


def over_after(inst: Instance, p: Plan) -> list[str]:
    """Hosts over a mark once the plan's moves are done, worked out from the snapshot and the moves (a
    baseline's Plan does not list them)."""
    where = {v.name: v.host for v in inst.snapshot.vms} | {m.vm: m.target for m in p.moves}
    used = {h.name: [0.0, 0.0] for h in inst.snapshot.hosts}
    for v in inst.snapshot.vms:
        used[where[v.name]][0] += v.cpu_cores
        used[where[v.name]][1] += v.memory_bytes
    th = ARGS.thresholds
    return [
        h.name
        for h in inst.snapshot.hosts
        if h.state == HostState.UP
        and (
            used[h.name][0] > th.cpu_high * h.cpus * (1 + 1e-9)
            or used[h.name][1] > th.memory_high * h.memory_bytes * (1 + 1e-9)
        )
    ]


def feasible(inst: Instance, p: Plan) -> bool:
    """No host over a mark after the plan's moves, and every draining host empty."""
    where = {v.name: v.host for v in inst.snapshot.vms} | {m.vm: m.target for m in p.moves}
    draining = {h.name for h in inst.snapshot.hosts if h.state == HostState.DRAINING}
    return not over_after(inst, p) and not (set(where.values()) & draining)


def run_planners(inst: Instance) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """Each planner's figures on ``inst``, and our relief, drain and make-room moves (the exact hint)."""
    out: dict[str, Any] = {}
    hint: tuple[tuple[str, str], ...] = ()
    for name, (planner, args) in PLANNERS.items():
        t0 = time.perf_counter()
        p = planner(inst.snapshot, PlannerState(), args, 0.0)
        if name == "ours":
            hint = tuple((m.vm, m.target) for m in p.moves if m.reason in WORK)
        out[name] = {
            "seconds": time.perf_counter() - t0,
            "feasible": feasible(inst, p),
            "over_after": len(over_after(inst, p)),
            "work_bytes": sum(m.cost.total_bytes for m in p.moves if m.reason in WORK),
            "balance_bytes": sum(m.cost.total_bytes for m in p.moves if m.reason == Reason.BALANCE),
            "moves": len(p.moves),
            "make_room_moves": sum(1 for m in p.moves if m.reason == Reason.MAKE_ROOM),
        }
    return out, hint


def run_one(inst: Instance, solver: str, limit_s: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "instance": inst.name,
        "size": inst.size,
        "kind": inst.kind,
        "seed": inst.seed,
        "hosts": len(inst.snapshot.hosts),
        "vms": len(inst.snapshot.vms),
        "hot_hosts": inst.hot_hosts,
        "drained_hosts": inst.drained_hosts,
    }
    planned, hint = run_planners(inst)
    row.update(planned)
    exact = optimum(inst.snapshot, PlannerState(), ARGS, 0.0, limit_s=limit_s, solver=solver, hint=hint)
    row["exact"] = {
        "status": exact.status,
        "bytes": exact.bytes,
        "moves": len(exact.moves),
        "seconds": exact.seconds,
        "cuts": exact.cuts,
    }
    add_ratios(row)
    # the exact repair as a planner would run it: within one planning budget, from our plan as a hint
    for name in ("cpsat", "highs"):
        quick = optimum(inst.snapshot, PlannerState(), ARGS, 0.0, limit_s=TICK_S, solver=name, hint=hint)
        row[f"{name}_{TICK_S:g}s"] = {"status": quick.status, "bytes": quick.bytes, "seconds": quick.seconds}
    return row


def add_ratios(row: dict[str, Any]) -> None:
    """Bytes ÷ the optimum for each planner whose plan is feasible where the optimum is proven: ours its
    relief, drain and make-room moves; a baseline all its moves (its balance moves are its relief)."""
    exact = row["exact"]
    if exact["status"] != "optimal" or exact["bytes"] <= 0:
        return
    for name in PLANNERS:
        r = row[name]
        if r["feasible"]:
            spent = r["work_bytes"] + (0 if name == "ours" else r["balance_bytes"])
            r["ratio"] = spent / exact["bytes"]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    solved = [r for r in rows if r["exact"]["status"] == "optimal"]
    ratios = np.array([r["ours"]["ratio"] for r in rows if "ratio" in r["ours"]], dtype=float)
    out: dict[str, Any] = {
        "instances": len(rows),
        "exact_solved": len(solved),
        "exact_seconds_max": max(r["exact"]["seconds"] for r in rows),
        "ratio_median": float(np.median(ratios)) if ratios.size else None,
        "ratio_max": float(ratios.max()) if ratios.size else None,
        "within_10pct": int((ratios <= 1.10 + 1e-9).sum()),
        "ratios": len(ratios),
    }
    for name in ("cpsat", "highs"):
        key = f"{name}_{TICK_S:g}s"
        done = [r for r in rows if r[key]["status"] == "optimal"]
        out[key] = {
            "optimal": len(done),
            "better_than_ours": sum(
                1
                for r in done
                if not r["ours"]["feasible"] or r[key]["bytes"] < r["ours"]["work_bytes"] * (1 - 1e-9)
            ),
        }
    for name in PLANNERS:
        theirs = np.array([r[name]["ratio"] for r in rows if "ratio" in r[name]], dtype=float)
        out[name] = {
            "ratio_median": float(np.median(theirs)) if theirs.size else None,
            "ratio_max": float(theirs.max()) if theirs.size else None,
            "feasible": sum(1 for r in rows if r[name]["feasible"]),
            "feasible_where_exact": sum(1 for r in solved if r[name]["feasible"]),
            "seconds_max": max(r[name]["seconds"] for r in rows),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small instances per kind (CI smoke)")
    ap.add_argument("--solver", choices=("cpsat", "highs"), default="cpsat")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds for the exact solver per instance")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "plan_quality.json")
    ap.add_argument(
        "--summarize",
        action="store_true",
        help="re-run the planners (not the exact solver) on --out's instances and recompute its summaries",
    )
    opts = ap.parse_args()
    if opts.summarize:
        data = json.loads(opts.out.read_text())
        for fam in data["families"].values():
            for row in fam["instances"]:
                size, kind, index = row["instance"].rsplit("-", 2)
                row.update(run_planners(instance(size, kind, int(index)))[0])
                add_ratios(row)
            fam["summary"] = summary(fam["instances"])
        opts.out.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"re-summarized {opts.out}")
        return
    counts = QUICK if opts.quick else COUNTS
    limit = min(opts.limit, 10.0) if opts.quick else opts.limit
    out: dict[str, Any] = {"quick": opts.quick, "solver": opts.solver, "families": {}}
    for size, count in counts.items():
        for kind in KINDS:
            rows = [run_one(inst, opts.solver, limit) for inst in family(size, kind, count)]
            s = summary(rows)
            out["families"][f"{size}-{kind}"] = {"summary": s, "instances": rows}
            ratio = "n/a" if s["ratio_median"] is None else f"{s['ratio_median']:.3f} / {s['ratio_max']:.3f}"
            print(
                f"{size:6s} {kind:7s} {s['instances']} instances, exact solved {s['exact_solved']} "
                f"(≤ {s['exact_seconds_max']:.1f} s); feasible: ours {s['ours']['feasible']}, "
                f"threshold-greedy {s['threshold_greedy']['feasible']}, std-dev what-if "
                f"{s['stddev_whatif']['feasible']}; bytes ÷ optimum median / worst {ratio} "
                f"({s['within_10pct']} of {s['ratios']} within 10 %); "
                f"plan ≤ {s['ours']['seconds_max']:.2f} s; exact within {TICK_S:g} s: CP-SAT "
                f"{s[f'cpsat_{TICK_S:g}s']['optimal']}, HiGHS {s[f'highs_{TICK_S:g}s']['optimal']} proven",
                flush=True,
            )
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
