"""Per-tick records of a simulated run and the hindsight value of every move (balancer.sim).

:class:`TickRecorder` is a ``run`` observer. At each tick it keeps the placement (the hosts of the VMs
at the start of the interval), what the planner saw of each host's CPU (the sum of its VMs' smoothed
``cpu_cores``) and every planned move with why it was taken: its reason and detail, the imbalance the
planner expected before and after it, the source's and target's predicted CPU load after it (the
planner's own units: demand ÷ usable cores, room for bursts included; NaN for the baselines, whose
moves carry no loads), the same two hosts' Σ forecast levels after it (policy/forecast.py: what ours
expects their mean load to be, whichever planner ran), and the moved VM's features and forecast level.

:func:`hindsight` then scores each move on what really happened over the ``horizon`` intervals after it
finished, against the counterfactual in which that one VM had stayed on its source (everything else as
it was):

* ``real_source_cpu`` / ``real_target_cpu``: the mean TRUE CPU load (trace cores ÷ cores) of the source
  and target over the horizon, next to the predicted ones; ``real_vm_cores`` the moved VM's mean trace
  cores, next to the planner's demand for it;
* ``cpu_sigma_cut``: how much lower the std-dev of true CPU load over hosts was, on average over the
  horizon, than without the move (positive: the move balanced; negative: it unbalanced);
* ``overload_minutes_saved``: host·minutes over the CPU mark on the two hosts without the move minus
  with it, over the horizon.

Migration overhead is left out of the hindsight (0.1 core on each end while a move runs), and loads are
per interval at the placement of its start. Nothing here changes a run: the observer only reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from balancer.model import MoveState, Plan, Snapshot
from balancer.policy.forecast import Forecast
from balancer.sim.cluster import SimCluster
from balancer.sim.run import RunResult


@dataclass(frozen=True)
class MoveSeen:
    """One planned move as the planner saw it, and (once scored) what it really did."""

    tick: int
    vm: str
    source: str
    target: str
    reason: str
    detail: str
    imbalance_before: float
    imbalance_after: float
    gib: float
    seconds: float
    source_cpu_before: float  # planner's view, demand ÷ usable cores
    source_cpu_after: float
    target_cpu_before: float
    target_cpu_after: float
    vm_cores: float  # the VM's smoothed cpu_cores in the snapshot
    vm_std_cores: float
    vm_forecast_cores: float  # the level ours plans it at (policy/forecast.py)
    source_level_after: float  # Σ forecast levels of the source's VMs after the move ÷ cores
    target_level_after: float
    vm_features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MoveValue:
    """What a move really did over its horizon (see the module docstring)."""

    move: MoveSeen
    finished_tick: int | None  # interval in which it ended; None: it did not succeed within the day
    horizon: int  # intervals scored
    real_source_cpu: float
    real_target_cpu: float
    real_vm_cores: float
    cpu_sigma_cut: float
    overload_minutes_saved: float


class TickRecorder:
    """A ``sim.run`` observer that keeps placements, the planner's view and every planned move."""

    def __init__(self) -> None:
        self.placement: list[np.ndarray] = []  # per tick (V,) host index at the start of the interval
        self.seen_cpu: list[np.ndarray] = []  # per tick (H,) Σ smoothed cpu_cores per host
        self.imbalance_seen: list[float] = []
        self.moves: list[MoveSeen] = []

    def __call__(self, k: int, snap: Snapshot, plan: Plan, cluster: SimCluster) -> None:
        assert k == len(self.placement), "ticks are observed in order, from 0"
        self.placement.append(cluster.placement.copy())
        seen = np.zeros(cluster.n_hosts)
        hosts = np.array([cluster.host_index[v.host] for v in snap.vms], dtype=np.int64)
        np.add.at(seen, hosts, [v.cpu_cores for v in snap.vms])
        self.seen_cpu.append(seen)
        self.imbalance_seen.append(plan.imbalance_before)
        levels = Forecast.of(snap.vms).level
        level_of = dict(zip((v.name for v in snap.vms), levels, strict=True))
        host_level = np.bincount(hosts, levels, cluster.n_hosts)  # moves applied in plan order below
        for m in plan.moves:
            vm = snap.vm(m.vm)
            src, tgt = m.source_load, m.target_load
            s, t = cluster.host_index[m.source], cluster.host_index[m.target]
            host_level[s] -= level_of[m.vm]
            host_level[t] += level_of[m.vm]
            self.moves.append(
                MoveSeen(
                    tick=k,
                    vm=m.vm,
                    source=m.source,
                    target=m.target,
                    reason=m.reason.value,
                    detail=m.detail,
                    imbalance_before=m.imbalance_before,
                    imbalance_after=m.imbalance_after,
                    gib=m.cost.total_bytes / 2**30,
                    seconds=m.cost.seconds,
                    source_cpu_before=src.before["cpu"] if src else float("nan"),
                    source_cpu_after=src.after["cpu"] if src else float("nan"),
                    target_cpu_before=tgt.before["cpu"] if tgt else float("nan"),
                    target_cpu_after=tgt.after["cpu"] if tgt else float("nan"),
                    vm_cores=vm.cpu_cores,
                    vm_std_cores=vm.cpu_std_cores,
                    vm_forecast_cores=float(level_of[m.vm]),
                    source_level_after=float(host_level[s] / cluster.host_cpus[s]),
                    target_level_after=float(host_level[t] / cluster.host_cpus[t]),
                    vm_features=features(vm),
                )
            )


def features(vm: Any) -> dict[str, float]:
    """The VM's CPU history features carried in the snapshot (whatever this version has)."""
    names = ("cpu_history_cores", "cpu_noise_cores", "cpu_samples", "cpu_window_samples")
    return {n: float(getattr(vm, n)) for n in names if hasattr(vm, n)}


def true_cpu(cluster: SimCluster, placement: np.ndarray, i: int) -> np.ndarray:
    """(H,) true CPU load (trace cores ÷ cores) of interval ``i`` under ``placement``."""
    return np.bincount(placement, cluster.demand(i), cluster.n_hosts) / cluster.host_cpus


def hindsight(rec: TickRecorder, result: RunResult, horizon: int = 12) -> list[MoveValue]:
    """Every move the run started and finished, scored over the ``horizon`` intervals after it ended."""
    c, ex = result.cluster, result.executor
    assert c is not None and ex is not None
    ticks = len(rec.placement)
    done = {(r.plan_id, r.vm): r for r in ex.finished if r.state == MoveState.SUCCEEDED}
    mark = c.cpu_high
    out = []
    for m in rec.moves:
        r = done.get((m.tick, m.vm))
        if r is None or r.finished_at is None or c.interval(r.finished_at) + 1 >= ticks:
            out.append(MoveValue(m, None, 0, *(float("nan"),) * 3, 0.0, 0.0))
            continue
        f = c.interval(r.finished_at) + 1
        span = range(f, min(ticks, f + horizon))
        v, s, t = c.vm_index[m.vm], c.host_index[m.source], c.host_index[m.target]
        src, tgt, vm_cores, cut, saved = [], [], [], [], 0.0
        for j in span:
            load = true_cpu(c, rec.placement[j], j)
            x = c.demand(j)[v] / c.host_cpus
            cf = load.copy()
            if rec.placement[j][v] == t:  # the VM is still where this move put it
                cf[s] += x[s]
                cf[t] -= x[t]
            src.append(load[s])
            tgt.append(load[t])
            vm_cores.append(c.demand(j)[v])
            cut.append(float(cf.std() - load.std()))
            over = (load[[s, t]] > mark).sum() - (cf[[s, t]] > mark).sum()
            saved -= float(over) * c.sample_seconds / 60.0
        out.append(
            MoveValue(
                m,
                f - 1,
                len(span),
                float(np.mean(src)),
                float(np.mean(tgt)),
                float(np.mean(vm_cores)),
                float(np.mean(cut)),
                saved,
            )
        )
    return out


def summarize_values(values: list[MoveValue], first_ticks: int = 24) -> dict[str, Any]:
    """Aggregates of :func:`hindsight` for balance moves: all, the first ``first_ticks`` and the rest."""

    def agg(vs: list[MoveValue]) -> dict[str, Any]:
        scored = [v for v in vs if v.horizon > 0]
        if not scored:
            return {"moves": len(vs), "scored": 0}
        cut = np.array([v.cpu_sigma_cut for v in scored])
        saved = np.array([v.overload_minutes_saved for v in scored])
        gap_pred = np.array([v.move.source_cpu_after - v.move.target_cpu_after for v in scored])
        gap_level = np.array([v.move.source_level_after - v.move.target_level_after for v in scored])
        gap_real = np.array([v.real_source_cpu - v.real_target_cpu for v in scored])
        vm_err = np.array([v.move.vm_cores - v.real_vm_cores for v in scored])
        fc_err = np.array([v.move.vm_forecast_cores - v.real_vm_cores for v in scored])
        return {
            "moves": len(vs),
            "scored": len(scored),
            "gib": round(float(sum(v.move.gib for v in vs)), 1),
            "cpu_sigma_cut_mean": round(float(cut.mean()), 5),
            "balanced_share": round(float((cut > 0).mean()), 3),
            "overload_minutes_saved": round(float(saved.sum()), 1),
            "predicted_gap_after_mean": round(float(gap_pred.mean()), 4),
            "forecast_gap_after_mean": round(float(gap_level.mean()), 4),
            "real_gap_after_mean": round(float(gap_real.mean()), 4),
            "vm_cores_seen_minus_real_mean": round(float(vm_err.mean()), 4),
            "vm_cores_seen_minus_real_abs_mean": round(float(np.abs(vm_err).mean()), 4),
            "vm_forecast_minus_real_abs_mean": round(float(np.abs(fc_err).mean()), 4),
        }

    bal = [v for v in values if v.move.reason == "balance"]
    return {
        "all": agg(bal),
        "first": agg([v for v in bal if v.move.tick < first_ticks]),
        "rest": agg([v for v in bal if v.move.tick >= first_ticks]),
        "first_ticks": first_ticks,
    }


def value_rows(values: list[MoveValue]) -> list[dict[str, Any]]:
    """Flat dicts, one per move (for JSON)."""
    return [{**asdict(v.move), **{k: x for k, x in asdict(v).items() if k != "move"}} for v in values]
