"""Baseline planners for the policy comparison, with ``policy.plan``'s signature (snapshot, state, args, now).

All three are pure, see the same smoothed Snapshot as ours, and share what any sane balancer does: they
never move a VM that is migrating or queued (``state.in_flight``), count such a VM's load on its target
("as already arrived", arrays.py), only move running VMs, only onto active hosts, keep every target's
memory at or under ``memory_high`` and its (observed) CPU at or under ``cpu_high`` after the move, and
plan at most ``policy.max_moves_per_tick`` moves per tick. Their moves run through the same executor
limits. Like the peers they plan on each VM's mean CPU: no room for its spread (ours keeps
``policy.cpu_burst_sigmas`` standard deviations). What else they lack, each on purpose, is named below.

* :func:`no_balancing`: never moves anything.
* :func:`threshold_greedy`, as simple balancers do: every host whose CPU is over the mark right now
  (no persistence: ``hold_ticks`` ignored), hottest first, sends its largest VM (most cores) to the least
  loaded host (lowest CPU share) where it fits. No cooldown, no margin, no cost, no memory of past moves.
* :func:`stddev_whatif`, as OpenStack Watcher's workload_stabilization strategy does: while the imbalance
  (objective.py, the same weighted std-dev of normalised cpu and memory load as ours) is above
  ``target_imbalance``, simulate every movable VM on every target (vectorised) and take the move leaving
  the least imbalance, if it lowers it at all. No cooldown, no ``min_improvement`` margin, no bytes.
"""

from __future__ import annotations

import numpy as np

from balancer.model import Move, Plan, PlannerState, Snapshot
from balancer.policy import PlanArgs, objective
from balancer.policy.arrays import ClusterArrays
from balancer.policy.cost import VMCosts
from balancer.policy.objective import RESOURCES, Sums
from balancer.reasons import Reason


class Board:
    """The tentative placement of one baseline plan: used capacity, homes, backing files, loads."""

    def __init__(self, snap: Snapshot, state: PlannerState, args: PlanArgs, now: float) -> None:
        self.now = now
        self.arr = arr = ClusterArrays.of(snap, state, args.thresholds, args.rules)
        self.costs = VMCosts.of(arr, args.bandwidth_mib_s, args.policy.memory_resend_cap)
        self.weights = np.array([args.policy.cpu_weight, args.policy.memory_weight], dtype=np.float64)
        self.used = arr.used.copy()
        self.home = arr.home.copy()
        self.present = arr.present.copy()
        self.movable = arr.running & ~arr.in_flight & (self.home >= 0)
        self.inv = np.divide(1.0, arr.cap[:, :2], out=np.zeros((arr.n_hosts, 2)), where=arr.cap[:, :2] > 0)
        self.moves: list[Move] = []
        self.before = self.imbalance()

    def load(self) -> np.ndarray:
        return objective.loads(self.used, self.arr.cap)

    def imbalance(self) -> float:
        return objective.imbalance(self.load(), self.arr.active, self.weights)

    def fits(self, vs: np.ndarray) -> np.ndarray:
        """(k, H) targets each VM may go to: active, not its home, cpu and memory at or under the marks."""
        arr = self.arr
        ok = np.broadcast_to(arr.active, (vs.size, arr.n_hosts)).copy()
        ok[np.arange(vs.size), self.home[vs]] = False
        for r in (0, 1):
            ok &= objective.fits(self.used[None, :, r], arr.demand[vs, r, None], arr.mark[None, :, r])
        return ok

    def move(self, v: int, t: int, reason: Reason, detail: str) -> None:
        arr = self.arr
        s = int(self.home[v])
        paths = arr.vm_paths[v]
        missing = float(arr.path_bytes[paths][~self.present[t, paths]].sum()) if paths.size else 0.0
        before = self.imbalance()
        self.used[s] -= arr.demand[v]
        self.used[t] += arr.demand[v]
        self.present[t, paths] = True
        self.home[v] = t
        self.movable[v] = False
        self.moves.append(
            Move(
                vm=arr.vms[v].name,
                source=arr.hosts[s].name,
                target=arr.hosts[t].name,
                reason=reason,
                cost=self.costs.move_cost(v, missing),
                imbalance_before=before,
                imbalance_after=self.imbalance(),
                detail=detail,
            )
        )

    def plan(self) -> Plan:
        load, active = self.load(), self.arr.active
        before = objective.resource_imbalance(objective.loads(self.arr.used, self.arr.cap), active)
        after = objective.resource_imbalance(load, active)
        return Plan(
            created_at=self.now,
            moves=tuple(self.moves),
            skips=(),
            imbalance_before=self.before,
            imbalance_after=self.imbalance(),
            resource_imbalance_before=dict(zip(RESOURCES, map(float, before), strict=True)),
            resource_imbalance_after=dict(zip(RESOURCES, map(float, after), strict=True)),
        )


def no_balancing(snap: Snapshot, state: PlannerState, args: PlanArgs, now: float) -> Plan:
    """(a) An empty plan every tick."""
    return Board(snap, state, args, now).plan()


def threshold_greedy(snap: Snapshot, state: PlannerState, args: PlanArgs, now: float) -> Plan:
    """(b) Largest VM off each host over the CPU mark, to the least loaded host where it fits."""
    b = Board(snap, state, args, now)
    arr, budget = b.arr, args.policy.max_moves_per_tick
    share = b.used[:, 0] * b.inv[:, 0]
    hot = np.flatnonzero(arr.active & (b.used[:, 0] > arr.mark[:, 0] * (1 + objective.EPS)))
    for h in sorted(hot.tolist(), key=lambda h: (-share[h], h)):
        if len(b.moves) >= budget:
            break
        vs = np.flatnonzero(b.movable & (b.home == h))
        if vs.size == 0:
            continue
        v = int(vs[np.lexsort((vs, -arr.demand[vs, 0]))[0]])
        ok = b.fits(np.array([v]))[0]
        if not ok.any():
            continue
        share = b.used[:, 0] * b.inv[:, 0]
        t = int(np.flatnonzero(ok)[np.argmin(share[ok])])
        b.move(
            v,
            t,
            Reason.HOTSPOT,
            f"{arr.hosts[h].name} over the CPU mark: its largest VM to the least loaded host",
        )
    return b.plan()


def stddev_whatif(snap: Snapshot, state: PlannerState, args: PlanArgs, now: float) -> Plan:
    """(c) Repeatedly the VM × target move leaving the least imbalance, while it lowers the imbalance."""
    b = Board(snap, state, args, now)
    arr = b.arr
    while len(b.moves) < args.policy.max_moves_per_tick:
        current = b.imbalance()
        if current <= args.thresholds.target_imbalance:
            break
        vs = np.flatnonzero(b.movable & arr.active[np.maximum(b.home, 0)])
        if vs.size == 0:
            break
        load = b.load()
        d = arr.demand[vs, :2]
        src = b.home[vs]
        after = objective.after_moves(
            Sums.of(load, arr.active),
            b.weights,
            load[src][:, None, :],
            (d * b.inv[src])[:, None, :],
            load[None, :, :],
            d[:, None, :] * b.inv[None, :, :],
        )
        after = np.where(b.fits(vs), after, np.inf)
        i, t = divmod(int(np.argmin(after)), arr.n_hosts)
        if not after[i, t] < current:
            break
        b.move(int(vs[i]), t, Reason.BALANCE, f"what-if: imbalance {current:.4f}→{after[i, t]:.4f}")
    return b.plan()
