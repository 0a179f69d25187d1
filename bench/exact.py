"""Exact optimum of relief and drain together as an integer program (scipy.optimize.milp, HiGHS).

Used by tests/policy/test_hotspot_exact.py and bench/plan_quality.py to measure how far the planner is
from the optimum. The problem is built from the planner's own Workspace, so the VMs that may move, the
targets they may use (pins, labels, ping-pong, anti-affinity with the VMs that stay), capacities, marks
and bytes are exactly the planner's.

Hosts: hot hosts S (a resource over the mark now and for hold_ticks ticks), draining hosts D, and the
active hosts A (targets). Movable VMs M: on draining hosts those a drain may move, elsewhere those
hotspot relief may move, on *any* active host (moving a VM off a target to open room is allowed, onto
any host including a hot one it relieved). Variables x[v,t] ∈ {0,1} (v ∈ M moves to t ∈ A, allowed by
the rules, t not its host), y[p,t] ∈ {0,1} (backing file p is copied to t).

    minimise   Σ base_v·x[v,t] + Σ bytes_p·y[p,t]
    subject to Σ_t x[v,t] ≤ 1   (= 1 for v on a draining host)          each VM moves at most once
               used_t,r + Σ_v d_v,r·x[v,t] − Σ_{v on t} d_v,r·Σ_u x[v,u]
                   (+ Σ_p bytes_p·y[p,t] for disk) ≤ mark_t,r          each active host t, resource r
               y[p,t] ≥ x[v,t]                                        v uses p and p is not on t

A host over a mark in a resource that has not persisted (not hot) takes no VMs and has no row for it.
This is the final state only: the planner must also order its moves so that no target is over a mark
at any point, which a swap (A→B and B→A at once) cannot satisfy; the optimum may use one. Not modelled
(the planner does them; tests and bench use instances without them): anti-affinity between two VMs that
both move, soft (preferred) labels, affinity units, the balance goal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from balancer.model import PlannerState, Snapshot
from balancer.policy import PlanArgs, hotspot, objective, workspace
from balancer.policy.workspace import Workspace


@dataclass(frozen=True)
class Exact:
    """An exact solution: status (``optimal``, ``infeasible``, ``timeout``, ``empty``) and its moves.

    ``cuts``: solutions refused because their moves cannot be ordered within the marks (a swap).
    """

    status: str
    bytes: float
    moves: tuple[tuple[str, str], ...]  # (vm, target)
    seconds: float = 0.0
    cuts: int = 0


CPU_SCALE = 1e6  # CP-SAT needs integers: cpu rows in micro-cores


@dataclass
class Model:
    """The integer program: minimise cost·z subject to lo ≤ A z ≤ hi, z ∈ {0, 1}; z = x (pairs) then y."""

    ws: Workspace
    pairs: list[tuple[int, int]]  # (vm, target) of each x
    cost: np.ndarray
    rows: list[tuple[dict[int, float], float, float, float]]  # coefficients, lo, hi, integer scale
    hint: list[int] = field(default_factory=list)  # x indices of a known solution (CP-SAT's first)


def optimum(
    snap: Snapshot,
    state: PlannerState,
    args: PlanArgs,
    now: float,
    limit_s: float = 60.0,
    solver: str = "cpsat",
    max_cuts: int = 300,
    hint: tuple[tuple[str, str], ...] = (),
) -> Exact:
    """The fewest bytes that relieve every hot host and empty every draining host, with moves that can be
    ordered within the marks (``empty``: nothing to do). ``solver``: ``cpsat`` or ``highs``; ``hint``:
    (vm, target) moves of a known plan, a first solution for CP-SAT (it does not change the optimum)."""
    t0 = time.perf_counter()
    model = build(workspace(snap, state, args, now))
    if isinstance(model, Exact):
        return model
    ws = model.ws
    index = {(ws.vm_name(v), ws.host_name(t)): i for i, (v, t) in enumerate(model.pairs)}
    model.hint = [index[m] for m in hint if m in index]
    solve = _highs if solver == "highs" else _cpsat
    cut = 0
    for cut in range(max_cuts + 1):  # noqa: B007 (reported)
        left = limit_s - (time.perf_counter() - t0)
        status, chosen = solve(model, max(left, 0.1))
        if status != "optimal" or orderable(model, chosen):
            break
        model.rows.append((dict.fromkeys(chosen, 1.0), -np.inf, len(chosen) - 1.0, 1.0))  # not this set
    else:
        status = "timeout"
    moves = tuple((ws.vm_name(model.pairs[i][0]), ws.host_name(model.pairs[i][1])) for i in chosen)
    total = float(sum(ws.costs.base[model.pairs[i][0]] for i in chosen))
    present = ws.present.copy()
    for i in chosen:  # backing files each target gets once
        v, t = model.pairs[i]
        paths = ws.arr.vm_paths[v]
        new = paths[~present[t, paths]]
        total += float(ws.arr.path_bytes[new].sum())
        present[t, new] = True
    return Exact(status, total if status == "optimal" else 0.0, moves, time.perf_counter() - t0, cut)


def build(ws: Workspace) -> Model | Exact:
    """The program of ``ws``'s relief and drains (the module docstring), or an Exact when trivial."""
    arr = ws.arr
    _, hot = hotspot.hot_hosts(ws)
    over = objective.overloaded(ws.used, arr.mark)
    on_drain = np.isin(ws.home, np.flatnonzero(arr.draining))
    must = [int(v) for v in np.flatnonzero(on_drain) if ws.blocker(int(v), "drain") is None]
    if not must and not hot.any():
        return Exact("empty", 0.0, ())
    # a host over a mark that has not persisted takes nothing; otherwise every active host is a target
    targets = arr.active & ~(over & ~hot).any(axis=1) & (ws.used[:, 2] <= arr.mark[:, 2])
    movable = ws.movable("hotspot") & (ws.home >= 0)
    movable &= arr.active[np.maximum(ws.home, 0)]
    may = sorted(set(must) | set(np.flatnonzero(movable).tolist()))
    goal = {v: "drain" for v in must}
    allowed = {v: ws.candidates((v,), goal.get(v, "hotspot"), capacity=False).mask & targets for v in may}  # type: ignore[arg-type]
    if any(not allowed[v].any() for v in must):
        return Exact("infeasible", 0.0, ())
    pairs = [(v, int(t)) for v in may for t in np.flatnonzero(allowed[v])]
    if not pairs:
        return Exact("infeasible", 0.0, ())
    must_set = set(must)
    backing = sorted({(int(p), t) for v, t in pairs for p in arr.vm_paths[v] if not ws.present[t, p]})
    n_x = len(pairs)
    y_index = {key: n_x + i for i, key in enumerate(backing)}
    cost = np.concatenate([ws.costs.base[[v for v, _ in pairs]], [arr.path_bytes[p] for p, _ in backing]])
    rows: list[tuple[dict[int, float], float, float, float]] = []
    by_vm: dict[int, list[int]] = {}
    by_target: dict[int, list[int]] = {}
    for i, (v, t) in enumerate(pairs):
        by_vm.setdefault(v, []).append(i)
        by_target.setdefault(t, []).append(i)
    for v in may:
        rows.append((dict.fromkeys(by_vm.get(v, []), 1.0), 1.0 if v in must_set else 0.0, 1.0, 1.0))
    for t in np.flatnonzero(arr.active):
        leaving = [i for v in may if ws.home[v] == t for i in by_vm.get(v, [])]
        for r in (0, 1, 2):
            room = float(arr.mark[t, r] - ws.used[t, r])
            if not np.isfinite(room) or (room < 0 and not (r < 2 and hot[t, r])):
                continue  # unknown disk size, or over a mark that has not persisted (takes nothing)
            coef = {i: float(arr.demand[pairs[i][0], r]) for i in by_target.get(int(t), [])}
            for i in leaving:
                coef[i] = coef.get(i, 0.0) - float(arr.demand[pairs[i][0], r])
            if r == 2:
                coef.update({y_index[(p, tt)]: float(arr.path_bytes[p]) for p, tt in backing if tt == t})
            if coef or room < 0:
                rows.append((coef, -np.inf, room, CPU_SCALE if r == 0 else 1.0))
    for i, (v, t) in enumerate(pairs):
        for p in arr.vm_paths[v]:
            if (int(p), t) in y_index:
                rows.append(({y_index[(int(p), t)]: 1.0, i: -1.0}, 0.0, np.inf, 1.0))
    return Model(ws, pairs, cost, rows)


def orderable(model: Model, chosen: list[int]) -> bool:
    """True when the chosen moves can run one at a time with every target within its marks at its turn
    (greedy, any move that fits now: arrivals only add load, so it finds an order when one exists)."""
    ws, arr = model.ws, model.ws.arr
    used, present = ws.used.copy(), ws.present.copy()
    pending = [model.pairs[i] for i in chosen]
    while pending:
        left = []
        for v, t in pending:
            paths = arr.vm_paths[v]
            missing = float(arr.path_bytes[paths[~present[t, paths]]].sum())
            add = arr.demand[v] + (0.0, 0.0, missing)
            if np.all(objective.fits(used[t], add, arr.mark[t])):
                used[int(ws.home[v])] -= arr.demand[v]
                used[t] += add
                present[t, paths] = True
            else:
                left.append((v, t))
        if len(left) == len(pending):
            return False
        pending = left
    return True


def _highs(model: Model, limit_s: float) -> tuple[str, list[int]]:
    n = len(model.cost)
    r_idx, c_idx, vals = [], [], []
    for k, (coef, _, _, _) in enumerate(model.rows):
        for c, val in coef.items():
            r_idx.append(k)
            c_idx.append(c)
            vals.append(val)
    a = coo_matrix((vals, (r_idx, c_idx)), shape=(len(model.rows), n)).tocsr()
    res = milp(
        c=model.cost,
        constraints=LinearConstraint(a, [r[1] for r in model.rows], [r[2] for r in model.rows]),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": limit_s},
    )
    if res.status == 2:
        return "infeasible", []
    if res.x is None:
        return "timeout", []
    chosen = [i for i in range(len(model.pairs)) if res.x[i] > 0.5]
    return ("optimal" if res.status == 0 else "timeout"), chosen


def _cpsat(model: Model, limit_s: float) -> tuple[str, list[int]]:
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    z = [m.new_bool_var(f"z{i}") for i in range(len(model.cost))]
    for coef, lo, hi, scale in model.rows:
        # integers: cpu in micro-cores, memory and disk in bytes; room rounded down (never over a mark)
        terms = [(c, round(v * scale)) for c, v in coef.items()]
        expr = sum(k * z[c] for c, k in terms)
        if np.isfinite(lo):
            m.add(expr >= int(np.ceil(lo * scale - 1e-9)))
        if np.isfinite(hi):
            m.add(expr <= int(np.floor(hi * scale + 1e-9)))
    m.minimize(sum(round(c / 1024) * z[i] for i, c in enumerate(model.cost)))
    chosen_hint = set(model.hint)
    for i in range(len(model.pairs)):
        m.add_hint(z[i], i in chosen_hint)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = limit_s
    solver.parameters.num_workers = 2
    status = solver.solve(m)
    if status == cp_model.INFEASIBLE:
        return "infeasible", []
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return "timeout", []
    chosen = [i for i in range(len(model.pairs)) if solver.value(z[i])]
    return ("optimal" if status == cp_model.OPTIMAL else "timeout"), chosen


# --------------------------------------------------------------------------- instances
def random_instance(
    seed: int,
    hosts: int,
    vms: int,
    kind: str = "hotspot",
    hot: int = 2,
    fill: tuple[float, float] | None = None,
) -> Snapshot:
    """A seeded random cluster with ``hot`` persistently overloaded (``kind="drain"``: draining) hosts.

    Hosts: 32 cores, 128 or 256 GiB, 2 TiB disk, each holding a random subset of 4 base images.
    VMs: memory 1/2/4/8/16 GiB (p = .2/.3/.3/.15/.05), cpu 0.2-3 cores, overlays lognormal (median
    8 GiB), one base image of 2-10 GiB, dirty rate 0-40 MiB/s. The hot (or draining) hosts get a
    double share of VMs; histories equal the current use, so every host over its mark is persistent.
    ``fill=(lo, hi)``: every host is sized from its own use instead: the others filled to lo-hi of their
    marks (e.g. (0.4, 0.85) moderate, (0.7, 0.97) tight), hot hosts over both marks, so targets are
    scarce and which VMs leave, and where to, matters.
    """
    from balancer.model import VM, BackingFile, Disk, Host, HostState

    rng = np.random.default_rng(seed)
    gib = 1 << 30
    bases = [
        BackingFile(f"/images/_base/base{i}.qcow2", "qcow2", 20 * gib, int(rng.integers(2, 11)) * gib)
        for i in range(4)
    ]
    names = [f"h{i:02d}" for i in range(hosts)]
    special = set(names[:hot])
    weight = np.array([2.0 if n in special else 1.0 for n in names])
    placement = rng.choice(hosts, size=vms, p=weight / weight.sum())
    vm_list = []
    for i in range(vms):
        base = bases[int(rng.integers(0, 4))]
        overlay = int(min(rng.lognormal(np.log(8), 0.8), 60) * gib)
        mem = int(rng.choice([1, 2, 4, 8, 16], p=[0.2, 0.3, 0.3, 0.15, 0.05])) * gib
        vm_list.append(
            VM(
                name=f"vm{i:03d}",
                uuid=f"u{i}",
                host=names[int(placement[i])],
                state="running",
                vcpus=4,
                memory_bytes=mem,
                cpu_cores=float(np.round(rng.uniform(0.2, 3.0), 2)),
                dirty_rate_bytes_s=float(rng.uniform(0, 40)) * (1 << 20),
                disks=(Disk("vda", f"/images/vm{i:03d}.qcow2", "qcow2", 40 * gib, overlay, (base,)),),
            )
        )
    used: dict[str, list[float]] = {n: [0.0, 0.0] for n in names}
    for v in vm_list:
        used[v.host][0] += v.cpu_cores
        used[v.host][1] += v.memory_bytes
    host_list = []
    for n in names:
        mem = int(rng.choice([128, 256])) * gib
        state = HostState.DRAINING if kind == "drain" and n in special else HostState.UP
        cpus = 32.0
        if kind == "hotspot" and n in special:  # make sure it is over a mark
            mem = int(max(used[n][1] / 0.95, 16 * gib))
            cpus = max(used[n][0] / 0.9, 1.0) if fill else cpus
        elif fill:
            level = rng.uniform(*fill)
            mem = int(max(used[n][1] / (0.85 * level), 16 * gib))
            cpus = max(used[n][0] / (0.8 * level), 1.0)
        present = tuple(b.path for b in bases if rng.random() < 0.5)
        host_list.append(
            Host(
                name=n,
                state=state,
                cpus=float(round(cpus, 2)),
                memory_bytes=mem,
                disk_capacity_bytes=2048 * gib,
                backing_files=present,
                cpu_history=(used[n][0],) * 5,
                memory_history=(used[n][1],) * 5,
            )
        )
    return Snapshot(taken_at=0.0, hosts=tuple(host_list), vms=tuple(vm_list))


def compare_solvers(size: str, kind: str, count: int, limit_s: float) -> list[dict[str, object]]:
    """Both solvers on the first ``count`` instances of a tight family (bench/tight.py), no hint."""
    from bench.tight import ARGS, family

    rows: list[dict[str, object]] = []
    for inst in family(size, kind, count):
        row: dict[str, object] = {"instance": inst.name}
        for solver in ("cpsat", "highs"):
            found = optimum(inst.snapshot, PlannerState(), ARGS, 0.0, limit_s=limit_s, solver=solver)
            row[solver] = {"status": found.status, "bytes": found.bytes, "seconds": found.seconds}
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    import argparse
    import json
    import os
    from pathlib import Path

    ap = argparse.ArgumentParser(description="CP-SAT against HiGHS on the exact problem (tight clusters)")
    ap.add_argument("--size", default="medium")
    ap.add_argument("--kind", default="both")
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--limit", type=float, default=120.0)
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--out", type=Path, default=root / "bench" / "results" / "plan_exact_solvers.json")
    opts = ap.parse_args()
    load = os.getloadavg()[0]
    rows = compare_solvers(opts.size, opts.kind, opts.count, opts.limit)
    out = {"size": opts.size, "kind": opts.kind, "limit_s": opts.limit, "load_average": load, "rows": rows}
    opts.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    main()
