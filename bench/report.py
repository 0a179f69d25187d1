"""Assemble docs/benchmarks.md from bench/results/*.json (and the policy comparison's own tables).

    .venv/bin/python bench/report.py          # after bench/run_all (or any single benchmark)

Every figure in docs/benchmarks.md comes from a results file written by a real run; a benchmark
that has not run yet is listed as such, never filled in by hand.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "benchmarks.md"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def section(title: str, command: str, name: str) -> tuple[dict[str, Any] | None, list[str]]:
    """A section's results (None: not run yet) and its first lines: title, how to run it."""
    d = load(name)
    out = [title, "", f"`{command}`", ""]
    return d, out if d is not None else [*out, "_not run yet_", ""]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 2**20
    except (OSError, ValueError, IndexError):
        mem = 0
    kernel = platform.release()
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{cores} cores ({cpu}), {mem} GiB, Linux {kernel}, Python {sys.version.split()[0]}"


def collect_section() -> list[str]:
    d = load("collect_speed")
    out = ["## Collection: 100 test-driver hosts × 20 domains", "", "`python bench/collect_speed.py`", ""]
    if d is None:
        return [*out, "_not run yet_", ""]
    steady = ", ".join(f"{s:.2f}" for s in d["steady_tick_seconds"])
    out += [
        f"- first tick (opens {d['hosts']} connections): {d['first_tick_seconds']:.2f} s",
        f"- steady ticks: {steady} s; worst {d['steady_worst_seconds']:.2f} s against the "
        f"{d['goal_seconds']:.0f} s goal ({'met' if d['meets_goal'] else 'NOT met'})",
        "",
    ]
    return out


def speed_section() -> list[str]:
    d, out = section(
        "## Planner speed on tight PlanetLab clusters", "python bench/plan_speed.py", "plan_speed"
    )
    if d is None:
        return out
    out += [
        "Instances from `bench/tight.py` (10-30 % of hosts over the CPU mark; drains of 2 % of hosts). "
        "Ours with the shipped defaults; threshold-greedy with its move cap lifted; the std-dev what-if "
        "for one move (each move scores every VM × host pair at once; not run at 10,000 hosts). "
        "Plan times are the process's CPU seconds (what a plan costs), then wall seconds (which also count "
        "waiting for a core on this shared machine); load average when the run started "
        f"{d.get('load_average_at_start', float('nan')):.2f}, at its end "
        f"{d.get('load_average_at_end', float('nan')):.2f}.",
        "",
        "| instance | hosts | VMs | hot | draining | ours CPU s / wall s | feasible | moves | peak MiB "
        "| threshold-greedy s (feasible, hot after) | std-dev what-if s per move |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for r in d["results"]:
        o, g = r["ours"], r["threshold_greedy"]
        w = r.get("stddev_whatif")
        out.append(
            f"| {r['instance']} | {r['hosts']} | {r['vms']} | {r['hot_hosts']} | {r['drained_hosts']} | "
            f"{o['cpu_seconds']:.3f} / {o['seconds']:.3f} | {o['feasible']} | {o['moves']} | "
            f"{o['peak_mib']:.0f} | "
            f"{g['seconds']:.3f} ({g['feasible']}, {g['over_after']}) | "
            f"{'not run' if w is None else format(w['seconds'], '.3f')} |"
        )
    growth = d.get("hot_growth") or []
    if growth:
        steps = ", ".join(f"{g['hot_hosts']} hot: {g['cpu_seconds']:.3f} s" for g in growth)
        out += [
            "",
            f"Growth in the number of hot hosts (1,000 hosts, only the k hottest persisted; CPU s): {steps}; "
            f"time grows as hot hosts^{d['hot_growth_exponent']:.2f} (the setup, about a third of a plan "
            "at this size, does not grow with them).",
        ]
    return [*out, ""]


def quality_section() -> list[str]:
    d, out = section(
        "## Plan quality on tight PlanetLab clusters against the exact optimum and the baselines",
        "python bench/plan_quality.py",
        "plan_quality",
    )
    if d is None:
        return out
    out += [
        f"Exact optimum: `bench/exact.py` with {d.get('solver', 'cpsat')} (relief and drains together, "
        "any VM may move, moves orderable within the marks). Feasible = no host over a mark after the "
        "plan and every draining host empty (the baselines do not drain). Ratio = bytes ÷ the optimum "
        "where both are feasible: ours counts its relief, drain and make-room moves, a baseline all its "
        "moves. The last column is the exact solver given one planning budget (1 s) and our plan as "
        "its first solution: how often it proves an optimum in time, and how often that beats our plan.",
        "",
        "| family | instances | exact solved (≤ s) | feasible: ours / threshold-greedy / std-dev what-if | "
        "bytes ÷ optimum, median / worst: ours | threshold-greedy | std-dev what-if | ours within 10 % "
        "| ours s max | exact within 1 s: proven / better than ours (CP-SAT; HiGHS) |",
        "|---|---:|---:|---|---|---|---|---:|---:|---|",
    ]

    def ratio(x: dict[str, Any]) -> str:
        return "n/a" if x.get("ratio_median") is None else f"{x['ratio_median']:.3f} / {x['ratio_max']:.3f}"

    for name, fam in d["families"].items():
        s = fam["summary"]
        o, g, w = s["ours"], s["threshold_greedy"], s["stddev_whatif"]
        c, h = s.get("cpsat_1s", {}), s.get("highs_1s", {})
        out.append(
            f"| {name} | {s['instances']} | {s['exact_solved']} ({s['exact_seconds_max']:.0f}) | "
            f"{o['feasible']} / {g['feasible']} / {w['feasible']} | {ratio(o)} | {ratio(g)} | {ratio(w)} | "
            f"{s['within_10pct']} of {s['ratios']} | {o['seconds_max']:.2f} | "
            f"{c.get('optimal', '-')} / {c.get('better_than_ours', '-')}; "
            f"{h.get('optimal', '-')} / {h.get('better_than_ours', '-')} |"
        )
    return [*out, ""]


def solvers_section() -> list[str]:
    d, out = section(
        "### The exact problem: CP-SAT against HiGHS", "python bench/exact.py", "plan_exact_solvers"
    )
    if d is None:
        return out
    out += [
        f"{d['size']} {d['kind']} clusters, {d['limit_s']:.0f} s each, no first solution given; load "
        f"average {d['load_average']:.1f} (wall seconds on a shared machine).",
        "",
        "| instance | CP-SAT | HiGHS |",
        "|---|---|---|",
    ]
    for r in d["rows"]:
        c, h = r["cpsat"], r["highs"]
        out.append(
            f"| {r['instance']} | {c['status']} in {c['seconds']:.1f} s | "
            f"{h['status']} in {h['seconds']:.1f} s |"
        )
    return [*out, ""]


def drain_section() -> list[str]:
    d, out = section(
        "## Drain in the lab against the physical limit", "python bench/drain_lab.py", "drain_lab"
    )
    if d is None:
        return out
    out += [
        f"- {d['guests']} guests drained ({d['succeeded']} succeeded), {d['mib_moved']:.0f} MiB copied, "
        f"cap {d['cap_mib_s']} MiB/s per migration, {d['allowed_mib_s']} MiB/s allowed out of the host",
        f"- wall time {d['wall_s']:.1f} s against a physical limit of {d['physical_limit_s']:.1f} s "
        f"(bytes ÷ allowed bandwidth): ratio **{d['ratio']:.2f}**"
        + (" (a --quick run)" if d.get("quick") else ""),
        "- per migration: " + ", ".join(f"{s:.1f} s" for s in d["per_migration_s"]),
    ]
    phases = d.get("phase_s") or {}
    if phases:
        out += ["", "| guest | " + " | ".join(_PHASES) + " |", "|---|" + "---:|" * len(_PHASES)]
        for vm, p in sorted(phases.items()):
            out.append(f"| {vm} | " + " | ".join(f"{p.get(k, 0.0):.2f}" for k in _PHASES) + " |")
        out += [
            "",
            "Seconds in each journal state. What keeps the ratio above 1 is per migration, not per byte: "
            "QEMU starting on the target and the switch-over (inside `migrating`), and in "
            "`copying_backing` the first move to each host proving its copy of the base image equal by "
            "sha256 (later moves reuse that proof and only pre-create the overlay). So the ratio tends to "
            "1 as guests grow; with tiny guests (`--quick`) it is several times the limit.",
        ]
    return [*out, ""]


def failover_section() -> list[str]:
    d, out = section(
        "## Failover: a new leader after the leader dies or freezes (PostgreSQL)",
        "python bench/failover.py",
        "failover",
    )
    if d is None:
        return out
    out += [
        f"Two `balancer run` on one PostgreSQL, three test-driver hosts, collection interval "
        f"{d['interval_s']:g} s (the lease's TTL), {d['rounds']} rounds of each fault. Time from the signal, "
        "on this machine's monotonic clock, until the store names the other instance leader and until "
        "that one has completed a tick as leader.",
        "",
        "| fault | lease taken over (median s) | first tick as leader (median ticks) | worst (ticks) | "
        f"goal ≤ {d['goal_ticks']:g} ticks |",
        "|---|---:|---:|---:|---|",
    ]
    for fault, f in d["faults"].items():
        name = {"kill": "kill -9", "pause": "SIGSTOP (frozen past its lease)"}.get(fault, fault)
        out.append(
            f"| {name} | {f['lease_s_median']:.2f} | {f['first_tick_ticks_median']:.2f} | "
            f"{f['first_tick_ticks_max']:.2f} | {'met' if f['meets_goal'] else 'NOT met'} |"
        )
    return [*out, ""]


_PHASES = ("queued", "prechecking", "copying_backing", "migrating", "verifying")


def snippet(name: str) -> list[str]:
    path = RESULTS / f"{name}.md"
    if not path.exists():
        return [f"_{name}: not run yet_", ""]
    text = path.read_text().replace("](img/", "](img/")
    return [text.rstrip(), ""]


DAY_START = [
    "What the day-start runs show (figures from the tables above). The simulator warms the collector",
    "up on the samples before the measured day; for a day starting at the trace's first sample those",
    "are the day's last samples (the day repeats), a history that never preceded its start. At tick 0",
    "the planner's picture is then off by about 1.3-1.8 times its usual error: 0.095 cores per VM for",
    "the smoothed mean (0.072 on later ticks) and 6.1 % of a host's cores for their sum (3.7 %); a day",
    "started 2 h later, warmed up on its real history, shows no such jump (0.066 and 3.6 % at tick 0).",
    "Every policy plans its first moves on that picture, and the one that moves most on it pays most.",
    "The std-dev objective takes any move that clears a 3 % relative cut of the *predicted*",
    "imbalance, a margin below the prediction's own error: it made 45-60 moves in the first 2 h",
    "(the what-if 21-33), each cutting the real std-dev of CPU load by 0.001-0.002 against the",
    "what-if's 0.003-0.007, and a quarter of them left it less even. That is the flaw in its",
    "prediction: a margin not measured against how sure the prediction is. Ours judges a move by the",
    "overload it is expected to save given each VM's noise and its forecast's error, and made 8-20",
    "moves in the first 2 h, 80-100 % of which evened the real load. It is not ahead in those 2 h on",
    "the day as recorded, though: 21 / 40 / 62 overloaded host·min against the what-if's 21 / 38 / 59",
    "(tune seeds 1-3); with the real warm-up, 18 / 20 / 36 against 25 / 24 / 72. What remains at the",
    "start is the wrong history, not the moves; the measurement is left as it was (shift 0), and",
    "`trace.shifted` is there to check a result against a real warm-up.",
    "",
]


def main() -> None:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/report.py` from `bench/results/*.json`; `bench/run_all` runs everything and",
        "then this. Each benchmark also has a `--quick` mode that `.ci/run` runs as a smoke test.",
        "",
        f"Machine of the last report: {machine()}.",
        "",
        *collect_section(),
        *speed_section(),
        *quality_section(),
        *solvers_section(),
        *drain_section(),
        *failover_section(),
        "## Policies on a day of real load (trace-driven simulator)",
        "",
        "`python bench/policy_compare.py` (held-out half of the VMs, seeds 1-3), then",
        "`python bench/sim_sweep.py` for the parameter study (tune and held-out halves) and",
        "`python bench/day_start.py` for the day-start case. The day's 1,052 VMs are split once, at random",
        "(`balancer.sim.trace.halves`, seed 2011), into a tune half and a held-out half; every default of",
        "ours was chosen on the tune half only, and the goal is judged on the held-out half.",
        "",
        *snippet("policy_compare"),
        "A bias the per-tick records show: right after a balance move of ours, the forecast put the source",
        "0.02-0.04 of its cores above the target; over the next 2 h the source really ran about 0.02",
        "below it (the what-if's moves show the same sign). Hosts picked because they look hot drift back",
        "down (regression to the mean), which per-VM forecasts do not model; not corrected yet.",
        "",
        "The parameter study below changes one knob of ours at a time from the defaults, on both halves.",
        "The defaults were chosen from the tune rows; the held-out rows show whether the choice holds.",
        "",
        *snippet("sim_sweep"),
        "`python bench/sim_sweep.py --grid` is how the defaults `cpu_burst_sigmas` and",
        "`min_overload_cut` were chosen, on the tune half only, by a rule fixed before the runs:",
        "",
        *snippet("sim_grid"),
        *snippet("day_start"),
        *DAY_START,
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
