"""The tentative placement during one ``plan()``: goals ask it for candidates, then call move() or skip().

Every planned move is applied here at once (used capacity, backing files now on the target, loads,
imbalance), so each later decision sees the cluster as it will be after the moves before it, and the
plan's moves are executable in order, each within capacity at its turn. The workspace owns the
bookkeeping only; what is feasible is decided in constraints.py, what it costs in cost.py, how good
it is in objective.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from balancer.model import LoadChange, Move, Plan, PlannerState, Skip, Snapshot
from balancer.policy import constraints, objective
from balancer.policy.args import PolicyArgs, RulesArgs, ThresholdArgs
from balancer.policy.arrays import ClusterArrays
from balancer.policy.constraints import Goal, Verdict
from balancer.policy.cost import VMCosts
from balancer.policy.objective import RESOURCES, Sums
from balancer.reasons import Reason

Describe = str | Callable[[Move], str]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    arrays: tuple[np.ndarray, ...]
    sums: Sums
    current: float
    moves: tuple[Move, ...]
    skips: tuple[Skip, ...]
    budget: int
    leaving: dict[int, tuple[int, ...]]
    room_made: dict[int, tuple[int, tuple[int, ...]]]
    undo: tuple[tuple[int, int, int, np.ndarray], ...]


@dataclass(frozen=True, eq=False)
class Mark:
    """A point to roll back to by undoing the moves planned since (cheaper than a Checkpoint when few
    moves are planned between: nothing of the size of the cluster is copied)."""

    moves: int
    skips: int
    room_made: dict[int, tuple[int, tuple[int, ...]]]


#: least-imbalance choice among this many equally cheap targets at most: the ones least loaded once the
#: VM is there (weighted as the imbalance is); scoring thousands of them per move is most of a drain's
#: time at 10,000 hosts, and the least loaded is where the imbalance falls most
SHORTLIST = 256


class Workspace:
    """Arrays of one snapshot plus the moves planned so far; ``to_plan()`` turns it into a Plan."""

    def __init__(
        self,
        snap: Snapshot,
        state: PlannerState,
        thresholds: ThresholdArgs,
        policy: PolicyArgs,
        rules: RulesArgs,
        bandwidth_mib_s: int,
        now: float,
    ) -> None:
        self.thresholds, self.policy, self.now = thresholds, policy, now
        # ours plans each VM's CPU at its forecast level (forecast.py); only the baselines plan on cpu_cores
        self.arr = arr = ClusterArrays.of(
            snap, state, thresholds, rules, policy.cpu_burst_sigmas, forecast=True
        )
        self.costs = VMCosts.of(arr, bandwidth_mib_s, policy.memory_resend_cap)
        self.rules = constraints.compile_rules(arr, rules, policy, state, now)
        self.weights = np.array([policy.cpu_weight, policy.memory_weight], dtype=np.float64)
        cap = arr.cap[:, :2]
        self.inv_cap = np.divide(1.0, cap, out=np.zeros_like(cap), where=cap > 0)  # (H, 2); 0 where none
        self.used = arr.used.copy()
        self.home = arr.home.copy()
        self.present = arr.present.copy()
        self.moved = np.zeros(arr.n_vms, dtype=bool)
        self.closed = np.zeros(arr.n_hosts, dtype=bool)  # hosts a goal declared no longer targets
        self.budget = balance_budget(policy.max_moves_per_tick, int(arr.active.sum()))
        self.moves: list[Move] = []
        self.skips: list[Skip] = []
        self._skipped: set[tuple[str, str]] = set()
        self.load = objective.loads(self.used, arr.cap)
        # the active hosts' loads as contiguous rows (2, n), kept in step with ``load`` by move(): the
        # imbalance after each move is recomputed from them (two passes, no drift) without a gather
        self.active_at = np.full(arr.n_hosts, -1, dtype=np.int64)
        self.active_at[arr.active] = np.arange(int(arr.active.sum()))
        self.active_rows = np.ascontiguousarray(self.load[arr.active].T)
        self.sums = Sums.of_rows(self.active_rows)
        self.current = float(objective.combine(objective.row_imbalance(self.active_rows), self.weights))
        self.sigma_before = objective.resource_imbalance(self.load, arr.active)
        self.imbalance_before = self.current
        self.overloaded_before = self.overloaded_hosts()
        # VMs grouped by their set of backing files: missing bytes per (group, host) kept up to date
        self.sig = arr.chain
        self.sig_bytes = np.zeros((len(arr.chains), len(arr.path_names)))
        for g, paths in enumerate(arr.chains):
            self.sig_bytes[g, paths] = arr.path_bytes[paths]
        self.sig_missing = self.sig_bytes @ (~self.present).T.astype(np.float64)
        # VMs leaving each host, in the order they leave: in-flight moves (their VMs still hold the
        # source until they end), then this plan's. A move that fits only once some have gone names
        # them in ``Move.after`` so the executor does not start it earlier (``room_needed``).
        # room made for a VM (room.py): VM → (target, VMs moved off it for it). Its move onto that target
        # names them in ``after`` too, so it does not land (over the cpu mark) before they have left
        self.room_made: dict[int, tuple[int, tuple[int, ...]]] = {}
        self.undo: list[tuple[int, int, int, np.ndarray]] = []  # per move: VM, source, target, files brought
        self.leaving: dict[int, list[int]] = {}
        for v in np.flatnonzero(arr.in_flight):
            was = arr.host_index.get(arr.vms[v].host, -1)
            if was >= 0 and was != arr.home[v]:
                self.leaving.setdefault(was, []).append(int(v))

    # ------------------------------------------------------------------ reading
    def vm_name(self, v: int) -> str:
        return self.arr.vms[v].name

    def host_name(self, h: int) -> str:
        return self.arr.hosts[h].name

    def vms_on(self, h: int) -> np.ndarray:
        return np.flatnonzero(self.home == h)

    def overloaded_hosts(self) -> tuple[str, ...]:
        over = objective.overloaded(self.used, self.arr.mark).any(axis=1) & self.arr.active
        return tuple(self.arr.hosts[h].name for h in np.flatnonzero(over))

    def missing_rows(self, vs: np.ndarray) -> np.ndarray:
        """(k, H) backing-file bytes each VM in ``vs`` would bring to each host."""
        return np.asarray(self.sig_missing[self.sig[vs]])

    def bytes_rows(self, vs: np.ndarray) -> np.ndarray:
        """(k, H) total bytes to copy for moving each VM in ``vs`` to each host."""
        return np.asarray(self.costs.base[vs, None] + self.missing_rows(vs))

    def blocker(self, v: int, goal: Goal) -> tuple[Reason, str] | None:
        return constraints.vm_blocker(self, v, goal)

    def movable(self, goal: Goal) -> np.ndarray:
        return constraints.movable(self, goal)

    def candidates(
        self, unit: tuple[int, ...], goal: Goal, only: int | None = None, capacity: bool = True
    ) -> Verdict:
        return constraints.verdict(self, unit, goal, only, capacity)

    def steps(self, v: int, h: np.ndarray | int) -> np.ndarray:
        """Load (cpu, memory) that VM ``v`` adds to host(s) ``h``: demand / usable capacity."""
        cap = self.arr.cap[h, :2]
        d = self.arr.demand[v, :2]
        return np.asarray(np.divide(d, cap, out=np.zeros(np.shape(cap)), where=cap > 0))

    def imbalance_after(self, unit: tuple[int, ...], targets: np.ndarray) -> np.ndarray:
        """Imbalance after moving ``unit`` (all from one source) to each of ``targets``."""
        arr = self.arr
        d = arr.demand[list(unit), :2].sum(axis=0)
        s = int(self.home[unit[0]])
        b = self.inv_cap[targets] * d
        if s >= 0 and arr.active[s]:
            a = np.divide(d, arr.cap[s, :2], out=np.zeros(2), where=arr.cap[s, :2] > 0)
            src = self.load[s]
        else:
            a, src = np.zeros(2), np.zeros(2)
        return objective.after_moves(self.sums, self.weights, src, a, self.load[targets], b)

    def choose(self, unit: tuple[int, ...], mask: np.ndarray, tie: str = "imbalance") -> int:
        """Target among ``mask``: fewest bytes to copy, then (``tie``) least resulting imbalance or
        tightest fit (least room left under the marks: keeps big holes for later moves), then name."""
        targets = np.flatnonzero(mask)
        if len(unit) == 1:
            total = self.costs.base[unit[0]] + self.sig_missing[self.sig[unit[0]], targets]
        else:
            total = self.bytes_rows(np.array(unit))[:, targets].sum(axis=0)
        cheap = targets[total <= total.min() * (1 + 1e-9)]
        if cheap.size == 1:
            return int(cheap[0])
        if tie == "tight":
            d = self.arr.demand[list(unit), :2].sum(axis=0)
            room = (self.arr.mark[cheap, :2] - self.used[cheap, :2] - d) / self.arr.cap[cheap, :2]
            return int(cheap[int(np.argmin(room.min(axis=1)))])
        if cheap.size > SHORTLIST:  # a large fleet: the least loaded after the move are the candidates
            d = self.arr.demand[list(unit), :2].sum(axis=0)
            key = (self.load[cheap] + self.inv_cap[cheap] * d) @ self.weights
            cheap = np.sort(cheap[np.argpartition(key, SHORTLIST)[:SHORTLIST]])
        after = self.imbalance_after(unit, cheap)
        return int(cheap[int(np.argmin(after))])

    # ------------------------------------------------------------------ writing
    def move(
        self,
        v: int,
        t: int,
        reason: Reason,
        detail: Describe = "",
        flags: tuple[Reason, ...] = (),
        wait_for: tuple[str, ...] = (),
    ) -> Move:
        """Plan VM ``v`` onto host ``t`` and apply it to the tentative placement.

        ``detail`` is the human text, or a function of the Move that writes it (it may quote the cost,
        loads and imbalance, which are known only once the move is applied). ``wait_for`` names VMs
        whose moves must end first besides those this workspace knows of (a standing proposal's room).
        """
        arr = self.arr
        s = int(self.home[v])
        assert s != t and s >= 0, (self.vm_name(v), s, t)
        missing = float(self.sig_missing[self.sig[v], t])
        cost = self.costs.move_cost(v, missing)
        after = self.room_needed(v, t)
        made = self.room_made.pop(v, (-1, ()))
        if made[0] == t:
            after += tuple(self.vm_name(u) for u in made[1] if self.vm_name(u) not in after)
        after += tuple(name for name in wait_for if name not in after)
        src_before, tgt_before, before = self.load[s].copy(), self.load[t].copy(), self.current
        self.used[s] -= arr.demand[v]
        self.used[t] += arr.demand[v]
        paths = arr.vm_paths[v]
        new = paths[~self.present[t, paths]]
        if new.size:
            self.present[t, new] = True
            self.used[t, 2] += arr.path_bytes[new].sum()
            self.sig_missing[:, t] = self.sig_bytes @ (~self.present[t]).astype(np.float64)
        self.home[v] = t
        self.moved[v] = True
        self.leaving.setdefault(s, []).append(v)
        self.undo.append((v, s, t, new))
        self.load[[s, t]] = objective.loads(self.used[[s, t]], arr.cap[[s, t]])
        for h in (s, t):
            if self.active_at[h] >= 0:
                self.active_rows[:, self.active_at[h]] = self.load[h]
        self.sums = Sums.of_rows(self.active_rows)  # recomputed, not updated: no drift over many moves
        self.current = float(objective.combine(objective.row_imbalance(self.active_rows), self.weights))
        mv = Move(
            vm=self.vm_name(v),
            source=self.host_name(s),
            target=self.host_name(t),
            reason=reason,
            cost=cost,
            source_load=_change(src_before, self.load[s]),
            target_load=_change(tgt_before, self.load[t]),
            imbalance_before=before,
            imbalance_after=self.current,
            detail=detail if isinstance(detail, str) else "",
            flags=flags,
            after=after,
        )
        if not isinstance(detail, str):
            mv = replace(mv, detail=detail(mv))
        self.moves.append(mv)
        return mv

    def room_needed(self, v: int, t: int) -> tuple[str, ...]:
        """The VMs that must have left ``t`` before VM ``v`` can land there, fewest first-leavers.

        Memory and disk are physical: until a leaving VM's migration ends it still holds both on
        ``t``. If ``t`` holds ``v`` (within usable capacity) with all of them still there, nothing
        is needed; else the shortest prefix of the leavers whose departure makes the room.
        """
        leaving = self.leaving.get(t)
        if not leaving:
            return ()
        gone = self.arr.demand[leaving][:, 1:3]
        held = self.used[t, 1:3] + gone.sum(axis=0) + self.arr.demand[v, 1:3]
        deficit = held - self.arr.cap[t, 1:3]
        short = deficit > 0
        if not short.any():
            return ()
        freed = np.cumsum(gone, axis=0)
        enough = (freed[:, short] >= deficit[short]).all(axis=1)
        k = int(np.argmax(enough)) if enough.any() else len(leaving) - 1
        return tuple(self.vm_name(u) for u in leaving[: k + 1])

    def skip(self, subject: str, name: str, reason: Reason, detail: str = "") -> None:
        """Record why a VM, host or the plan was left alone (first reason per subject wins)."""
        if (subject, name) in self._skipped:
            return
        self._skipped.add((subject, name))
        assert subject in ("vm", "host", "plan")
        self.skips.append(Skip(subject=subject, name=name, reason=reason, detail=detail))  # type: ignore[arg-type]

    def unskip(self, subject: str, name: str) -> None:
        """Forget the skip of a VM, host or the plan (it is being tried again)."""
        if (subject, name) in self._skipped:
            self._skipped.discard((subject, name))
            self.skips = [s for s in self.skips if (s.subject, s.name) != (subject, name)]

    def spend(self) -> bool:
        """Take one move from the balance budget; False when it is spent."""
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True

    def checkpoint(self) -> Checkpoint:
        """The whole tentative state, for a goal that tries alternatives and keeps one (``restore``)."""
        arrays = (self.used, self.home, self.present, self.moved, self.closed, self.sig_missing, self.load)
        return Checkpoint(
            arrays=tuple(a.copy() for a in arrays),
            sums=self.sums,
            current=self.current,
            moves=tuple(self.moves),
            skips=tuple(self.skips),
            budget=self.budget,
            leaving={h: tuple(vs) for h, vs in self.leaving.items()},
            room_made=dict(self.room_made),
            undo=tuple(self.undo),
        )

    def restore(self, cp: Checkpoint) -> None:
        arrays = tuple(a.copy() for a in cp.arrays)
        self.used, self.home, self.present, self.moved, self.closed, self.sig_missing, self.load = arrays
        self.sums, self.current, self.budget = cp.sums, cp.current, cp.budget
        self.active_rows = np.ascontiguousarray(self.load[self.arr.active].T)
        self.moves, self.skips = list(cp.moves), list(cp.skips)
        self.leaving = {h: list(vs) for h, vs in cp.leaving.items()}
        self.room_made = dict(cp.room_made)
        self.undo = list(cp.undo)
        self._skipped = {(s.subject, s.name) for s in cp.skips}

    def mark(self) -> Mark:
        return Mark(len(self.moves), len(self.skips), dict(self.room_made))

    def rollback(self, mark: Mark) -> None:
        """Undo the moves planned since ``mark`` (latest first) and the skips recorded since."""
        arr, touched = self.arr, set()
        while len(self.moves) > mark.moves:
            self.moves.pop()
            v, s, t, new = self.undo.pop()
            self.used[s] += arr.demand[v]
            self.used[t] -= arr.demand[v]
            if new.size:
                self.present[t, new] = False
                self.used[t, 2] -= arr.path_bytes[new].sum()
                self.sig_missing[:, t] = self.sig_bytes @ (~self.present[t]).astype(np.float64)
            self.home[v] = s
            self.moved[v] = False
            self.leaving[s].pop()
            touched |= {s, t}
        for h in sorted(touched):
            self.load[h] = objective.loads(self.used[[h]], arr.cap[[h]])[0]
            if self.active_at[h] >= 0:
                self.active_rows[:, self.active_at[h]] = self.load[h]
        self.sums = Sums.of_rows(self.active_rows)
        self.current = float(objective.combine(objective.row_imbalance(self.active_rows), self.weights))
        del self.skips[mark.skips :]
        self._skipped = {(sk.subject, sk.name) for sk in self.skips}
        self.room_made = dict(mark.room_made)

    def to_plan(self) -> Plan:
        sigma = objective.resource_imbalance(self.load, self.arr.active)
        return Plan(
            created_at=self.now,
            moves=tuple(self.moves),
            skips=tuple(self.skips),
            imbalance_before=self.imbalance_before,
            imbalance_after=self.current,
            resource_imbalance_before=dict(zip(RESOURCES, map(float, self.sigma_before), strict=True)),
            resource_imbalance_after=dict(zip(RESOURCES, map(float, sigma), strict=True)),
            overloaded_before=self.overloaded_before,
            overloaded_after=self.overloaded_hosts(),
        )


def balance_budget(per_100_hosts: int, active_hosts: int) -> int:
    """Balance moves one plan may make: ``policy.max_moves_per_tick`` per 100 active hosts (started)."""
    return per_100_hosts * max(1, -(-active_hosts // 100))


def _change(before: np.ndarray, after: np.ndarray) -> LoadChange:
    return LoadChange(
        before={r: float(x) for r, x in zip(RESOURCES, before, strict=True)},
        after={r: float(x) for r, x in zip(RESOURCES, after, strict=True)},
    )
