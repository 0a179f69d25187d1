"""Exact optimum of the hotspot and drain problems as integer programs (scipy.optimize.milp, HiGHS).

Used by tests/policy/test_hotspot_exact.py and bench/plan_quality.py to measure how far the planner's
heuristics are from the optimum. The problems are built from the planner's own Workspace, so the VMs
that may move, the targets they may use (pins, labels, ping-pong, anti-affinity with the VMs that stay),
capacities, marks and bytes are exactly the planner's.

Hotspot problem. Hot hosts S (over the mark now and for hold_ticks ticks), movable VMs M on them
(hotspot rules), targets T = active hosts not over a mark at the start. Variables x[v,t] ∈ {0,1}
(v ∈ M moves to t ∈ T, allowed by the rules), y[p,t] ∈ {0,1} (backing file p is copied to t).

    minimise   Σ base_v·x[v,t] + Σ bytes_p·y[p,t]
    subject to Σ_t x[v,t] ≤ 1                                   each VM moves at most once
               Σ_{v on h} d_v,r·Σ_t x[v,t] ≥ used_h,r − mark_h,r  each hot host h, resource r hot on h
               used_t,r + Σ_v d_v,r·x[v,t] (+ Σ_p bytes_p·y[p,t] for disk) ≤ mark_t,r   each target t, r
               y[p,t] ≥ x[v,t]                                   v uses p and p is not on t

Drain problem: the same with M = the VMs on draining hosts that may leave (drain rules), T = active
hosts, Σ_t x[v,t] = 1 for each v, and no relief rows.

Not modelled (the planner does them; tests and bench use instances without them): anti-affinity
between two VMs that both move, soft (preferred) labels, affinity units, the moves-per-tick budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from balancer.model import PlannerState, Snapshot
from balancer.policy import PlanArgs, hotspot, objective, workspace
from balancer.policy.workspace import Workspace


@dataclass(frozen=True)
class Exact:
    """An exact solution: status (``optimal``, ``infeasible``, ``timeout``, ``empty``) and its moves."""

    status: str
    bytes: float
    moves: tuple[tuple[str, str], ...]  # (vm, target)
    seconds: float = 0.0


def hotspot_optimum(
    snap: Snapshot, state: PlannerState, args: PlanArgs, now: float, limit_s: float = 60.0
) -> Exact:
    ws = workspace(snap, state, args, now)
    order, hot = hotspot.hot_hosts(ws)
    if not order:
        return Exact("empty", 0.0, ())
    targets = ws.arr.active & ~objective.overloaded(ws.used, ws.arr.mark).any(axis=1)
    movable = ws.movable("hotspot")
    vms = [int(v) for h in order for v in ws.vms_on(h) if movable[v]]
    relief = [(h, r, float(ws.used[h, r] - ws.arr.mark[h, r])) for h in order for r in (0, 1) if hot[h, r]]
    return _solve(ws, vms, targets, relief, exactly_once=False, goal="hotspot", limit_s=limit_s)


def drain_optimum(
    snap: Snapshot, state: PlannerState, args: PlanArgs, now: float, limit_s: float = 60.0
) -> Exact:
    ws = workspace(snap, state, args, now)
    on = np.flatnonzero(np.isin(ws.home, np.flatnonzero(ws.arr.draining)))
    vms = [int(v) for v in on if ws.blocker(int(v), "drain") is None]
    if not vms:
        return Exact("empty", 0.0, ())
    return _solve(ws, vms, ws.arr.active.copy(), [], exactly_once=True, goal="drain", limit_s=limit_s)


def _solve(
    ws: Workspace,
    vms: list[int],
    targets: np.ndarray,
    relief: list[tuple[int, int, float]],
    exactly_once: bool,
    goal: str,
    limit_s: float,
) -> Exact:
    arr = ws.arr
    allowed = {v: ws.candidates((v,), goal, capacity=False).mask & targets for v in vms}  # type: ignore[arg-type]
    pairs = [(v, int(t)) for v in vms for t in np.flatnonzero(allowed[v])]
    backing = sorted({(int(p), t) for v, t in pairs for p in arr.vm_paths[v] if not ws.present[t, p]})
    n_x, n_y = len(pairs), len(backing)
    if n_x == 0:
        return Exact("infeasible" if exactly_once or relief else "empty", 0.0, ())
    y_index = {key: n_x + i for i, key in enumerate(backing)}
    cost = np.concatenate([ws.costs.base[[v for v, _ in pairs]], [arr.path_bytes[p] for p, _ in backing]])
    rows: list[tuple[dict[int, float], float, float]] = []
    by_vm: dict[int, dict[int, float]] = {}
    for i, (v, _) in enumerate(pairs):
        by_vm.setdefault(v, {})[i] = 1.0
    for v in vms:
        rows.append((by_vm.get(v, {}), 1.0 if exactly_once else 0.0, 1.0))
    for h, r, need in relief:
        coef = {i: float(arr.demand[v, r]) for i, (v, _) in enumerate(pairs) if ws.home[v] == h}
        rows.append((coef, need, np.inf))
    for t in np.flatnonzero(targets):
        for r in (0, 1, 2):
            room = float(arr.mark[t, r] - ws.used[t, r])
            if not np.isfinite(room):
                continue
            coef = {i: float(arr.demand[v, r]) for i, (v, tt) in enumerate(pairs) if tt == t}
            if r == 2:
                coef.update({y_index[(p, tt)]: float(arr.path_bytes[p]) for p, tt in backing if tt == t})
            if coef:
                rows.append((coef, -np.inf, room))
    for i, (v, t) in enumerate(pairs):
        for p in arr.vm_paths[v]:
            if (int(p), t) in y_index:
                rows.append(({y_index[(int(p), t)]: 1.0, i: -1.0}, 0.0, np.inf))
    r_idx, c_idx, vals = [], [], []
    for k, (coef, _, _) in enumerate(rows):
        for c, val in coef.items():
            r_idx.append(k)
            c_idx.append(c)
            vals.append(val)
    a = coo_matrix((vals, (r_idx, c_idx)), shape=(len(rows), n_x + n_y)).tocsr()
    lo = np.array([lo for _, lo, _ in rows])
    hi = np.array([hi for _, _, hi in rows])
    res = milp(
        c=cost,
        constraints=LinearConstraint(a, lo, hi),
        integrality=np.ones(n_x + n_y),
        bounds=Bounds(0, 1),
        options={"time_limit": limit_s},
    )
    if res.status == 2:
        return Exact("infeasible", 0.0, ())
    if res.x is None:
        return Exact("timeout", 0.0, ())
    chosen = [pairs[i] for i in range(n_x) if res.x[i] > 0.5]
    status = "optimal" if res.status == 0 else "timeout"
    return Exact(
        status, float(cost @ np.round(res.x)), tuple((ws.vm_name(v), ws.host_name(t)) for v, t in chosen)
    )


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
