"""Who may move and where to: the one place that owns feasibility, each refusal with its Reason.

Rules and their semantics:

* **running / in flight**: only running VMs are live-migrated (``not_running``); a VM with a migration in
  flight (``state.in_flight`` or ``vm.migrating``) is never moved again (``in_flight``).
* **excluded**: ``rules.exclude_vms`` (fnmatch patterns) or ``vm.tags.exclude``: never moved, not even
  by a drain (``excluded``).
* **quarantine**: a failed migration within ``quarantine_minutes``: left alone, drains included.
* **cooldown**: a successful move within ``cooldown_minutes``: not moved again except by a drain.
* **no ping-pong**: a VM never goes back to a host it left within the cooldown window; for a drain this
  is a preference (the host is used only when nothing else fits), so a drain never hangs on it.
* **refused**: a target whose pre-check refused the VM within the cooldown is not asked again, by any
  goal, drains included: asking it every tick would hang a drain on a host that said no, where the
  drain must show its blocker instead (``cooldown``, naming the hosts that refused).
* **would not converge** (dirty rate ≥ bandwidth cap): avoided, except by a drain (flagged there).
* **pins**: ``rules.pins`` and ``vm.tags.pin_hosts`` (both present: the intersection) name the only
  hosts a VM may run on (``pinned``).
* **host labels**: a ``rules.host_labels`` rule matching the VM (fnmatch) with ``required=True`` limits
  targets to hosts carrying all its labels (``label_mismatch``); ``required=False`` is a preference:
  when any feasible target carries the labels, only those are used.
* **anti-affinity** (keep apart): ``rules.anti_affinity`` groups, and every ``vm.tags.groups`` tag
  shared by two or more VMs (group ``tag:<name>``). A VM may not go to a host holding another member.
* **affinity** (keep together): the group moves together or not at all. Hotspot and balance never move
  a member (``affinity``); a drain moves the members on the drained host as one unit to one target (or
  to the host where the others are); a repair moves stragglers to the host holding most members.
* **hosts**: only active hosts (UP, not draining, not excluded; see arrays.py) are targets, less any
  a goal closed for its own moves (hotspot relief closes the hosts that were over a mark).
* **capacity**: on the target, cpu and memory stay at or under the high-water mark and disk (the VM's
  overlays plus any backing file it brings) under ``disk_high``, counting moves in flight and planned.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from balancer.model import PlannerState
from balancer.policy.args import PolicyArgs, RulesArgs
from balancer.policy.arrays import GIB, MIB, ClusterArrays
from balancer.policy.cost import VMCosts
from balancer.policy.objective import fits
from balancer.reasons import Reason

Goal = Literal["drain", "repair", "hotspot", "balance"]


@dataclass(frozen=True)
class Group:
    """An affinity or anti-affinity group: rule name and member VM indices."""

    name: str
    members: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Verdict:
    """Feasible targets of a VM (or an affinity unit); when there are none, why."""

    mask: np.ndarray  # (H,) bool
    reason: Reason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.mask.any())


@dataclass(frozen=True, eq=False)
class Rules:
    """All placement rules of one plan, compiled to VM and host indices."""

    excluded: dict[int, str]
    quarantined: dict[int, str]
    cooldown: dict[int, str]
    left: dict[int, np.ndarray]  # VM → host indices it left within the cooldown
    refused: dict[int, np.ndarray]  # VM → host indices whose pre-check refused it within the cooldown
    pinned: dict[int, np.ndarray]  # VM → (H,) allowed hosts
    required: dict[int, tuple[np.ndarray, str]]  # VM → (H,) hosts with the required labels, rule text
    preferred: dict[int, np.ndarray]  # VM → (H,) hosts with the preferred labels
    anti: tuple[Group, ...]
    affinity: tuple[Group, ...]
    vm_anti: dict[int, tuple[int, ...]]  # VM → indices into ``anti``
    vm_affinity: dict[int, int]  # VM → index into ``affinity``
    has_target_rule: np.ndarray  # (V,) bool: pinned, labels, left or refusing hosts, or anti-affinity
    blocked: np.ndarray  # (V,) bool: excluded or quarantined (every goal)
    cooling: np.ndarray  # (V,) bool


class Tentative(Protocol):
    """What feasibility reads of the tentative placement (workspace.Workspace has it): the cluster, its
    rules and costs, and the placement as the moves planned so far leave it."""

    arr: ClusterArrays
    rules: Rules
    costs: VMCosts
    used: np.ndarray  # (H, 3)
    home: np.ndarray  # (V,)
    present: np.ndarray  # (H, P)
    moved: np.ndarray  # (V,) bool
    closed: np.ndarray  # (H,) bool
    sig: np.ndarray  # (V,) backing-file group of each VM
    sig_missing: np.ndarray  # (groups, H) bytes a group's VM would bring to each host

    def vm_name(self, v: int) -> str: ...


def compile_rules(
    arr: ClusterArrays, rules: RulesArgs, policy: PolicyArgs, state: PlannerState, now: float
) -> Rules:
    n_v, n_h = arr.n_vms, arr.n_hosts
    names = [v.name for v in arr.vms]
    excluded: dict[int, str] = {}
    for pat in rules.exclude_vms:
        for name in fnmatch.filter(names, pat):
            excluded.setdefault(arr.vm_index[name], f"{name} matches rules.exclude_vms {pat!r}")
    quarantined: dict[int, str] = {}
    cooldown: dict[int, str] = {}
    left_sets: dict[int, set[int]] = {}
    refused_sets: dict[int, set[int]] = {}
    for pm in sorted(state.recent, key=lambda p: (p.finished_at, p.vm)):
        vi = arr.vm_index.get(pm.vm)
        if vi is None:
            continue
        age_min = (now - pm.finished_at) / 60.0
        if pm.refused:  # nothing was tried: not the VM's fault, but do not ask that target again soon
            if age_min < policy.cooldown_minutes and pm.target in arr.host_index:
                refused_sets.setdefault(vi, set()).add(arr.host_index[pm.target])
            continue
        if not pm.succeeded and age_min < policy.quarantine_minutes:
            quarantined[vi] = (
                f"{pm.vm}: migration {pm.source}→{pm.target} failed {age_min:.0f} min ago "
                f"(quarantine {policy.quarantine_minutes:g} min)"
            )
        if pm.succeeded and age_min < policy.cooldown_minutes:
            cooldown[vi] = (
                f"{pm.vm} moved {pm.source}→{pm.target} {age_min:.0f} min ago "
                f"(cooldown {policy.cooldown_minutes:g} min)"
            )
            if pm.source in arr.host_index:
                left_sets.setdefault(vi, set()).add(arr.host_index[pm.source])
    left = {v: np.array(sorted(s), dtype=np.int64) for v, s in left_sets.items()}
    refused = {v: np.array(sorted(s), dtype=np.int64) for v, s in refused_sets.items()}

    pin_of = {p.vm: set(p.hosts) for p in rules.pins}
    pinned: dict[int, np.ndarray] = {}
    tag_groups: dict[str, list[int]] = {}
    for vi, vm in enumerate(arr.vms):
        if vm.tags.exclude:
            excluded.setdefault(vi, f"{vm.name} is tagged exclude")
        for g in vm.tags.groups:
            tag_groups.setdefault(g, []).append(vi)
        hosts = pin_of.get(vm.name)
        if vm.tags.pin_hosts:
            hosts = set(vm.tags.pin_hosts) if hosts is None else hosts & set(vm.tags.pin_hosts)
        if hosts is not None:
            pinned[vi] = np.array([h.name in hosts for h in arr.hosts], dtype=bool)

    required: dict[int, tuple[np.ndarray, str]] = {}
    preferred: dict[int, np.ndarray] = {}
    for rule in rules.host_labels:
        match = np.array(
            [all(h.labels.get(k) == val for k, val in rule.labels.items()) for h in arr.hosts], dtype=bool
        )
        text = ",".join(f"{k}={val}" for k, val in sorted(rule.labels.items()))
        hits = sorted({arr.vm_index[n] for pat in rule.vms for n in fnmatch.filter(names, pat)})
        for vi in hits:
            if rule.required:
                old = required.get(vi)
                required[vi] = (
                    match if old is None else old[0] & match,
                    text if old is None else old[1] + "; " + text,
                )
            else:
                preferred[vi] = match if vi not in preferred else preferred[vi] & match

    anti = [_group(r.name, r.vms, arr) for r in rules.anti_affinity]
    anti += [
        Group(f"tag:{g}", tuple(sorted(set(m)))) for g, m in sorted(tag_groups.items()) if len(set(m)) > 1
    ]
    anti = [g for g in anti if len(g.members) > 1]
    affinity = [g for g in (_group(r.name, r.vms, arr) for r in rules.affinity) if len(g.members) > 1]
    vm_anti: dict[int, list[int]] = {}
    for gi, group in enumerate(anti):
        for m in group.members:
            vm_anti.setdefault(m, []).append(gi)
    vm_affinity = {m: gi for gi, g in enumerate(affinity) for m in g.members}

    has_rule = np.zeros(n_v, dtype=bool)
    for d in (pinned, required, preferred, left, refused, vm_anti):
        has_rule[list(d)] = True
    blocked = np.zeros(n_v, dtype=bool)
    blocked[list(excluded) + list(quarantined)] = True
    cooling = np.zeros(n_v, dtype=bool)
    cooling[list(cooldown)] = True
    del n_h
    return Rules(
        excluded=excluded,
        quarantined=quarantined,
        cooldown=cooldown,
        left=left,
        refused=refused,
        pinned=pinned,
        required=required,
        preferred=preferred,
        anti=tuple(anti),
        affinity=tuple(affinity),
        vm_anti={k: tuple(v) for k, v in vm_anti.items()},
        vm_affinity=vm_affinity,
        has_target_rule=has_rule,
        blocked=blocked,
        cooling=cooling,
    )


def _group(name: str, vms: tuple[str, ...], arr: ClusterArrays) -> Group:
    return Group(name, tuple(sorted({arr.vm_index[v] for v in vms if v in arr.vm_index})))


def vm_blocker(ws: Tentative, v: int, goal: Goal) -> tuple[Reason, str] | None:
    """Why VM ``v`` may not move at all for ``goal`` (None: it may, if a target fits)."""
    arr, rules, vm = ws.arr, ws.rules, ws.arr.vms[v]
    if arr.in_flight[v]:
        return Reason.IN_FLIGHT, f"{vm.name} is already migrating"
    if not arr.running[v]:
        return Reason.NOT_RUNNING, f"{vm.name} is {vm.state}: only running VMs are live-migrated"
    if v in rules.excluded:
        return Reason.EXCLUDED, rules.excluded[v]
    if v in rules.quarantined:
        return Reason.QUARANTINED, rules.quarantined[v]
    if goal == "drain":
        return None
    if v in rules.cooldown:
        return Reason.COOLDOWN, rules.cooldown[v]
    if not ws.costs.converges[v]:
        bw = ws.costs.bandwidth_bytes_s
        return Reason.WOULD_NOT_CONVERGE, (
            f"{vm.name} dirties {vm.dirty_rate_bytes_s / MIB:.0f} MiB/s, at or above the "
            f"{bw / MIB:.0f} MiB/s cap: it would not converge"
        )
    if goal != "repair" and v in rules.vm_affinity:
        g = rules.affinity[rules.vm_affinity[v]]
        return Reason.AFFINITY, f"{vm.name} moves only with its affinity group {g.name!r}"
    return None


def movable(ws: Tentative, goal: Goal) -> np.ndarray:
    """(V,) bool: VMs with no blocker for ``goal`` that this plan has not moved yet (vectorised)."""
    rules = ws.rules
    ok = ws.arr.running & ~ws.arr.in_flight & ~rules.blocked & ~ws.moved
    if goal != "drain":
        ok &= ~rules.cooling & ws.costs.converges
    if goal in ("hotspot", "balance") and rules.vm_affinity:
        ok[list(rules.vm_affinity)] = False
    return ok


def anti_forbidden(ws: Tentative, v: int, unit: tuple[int, ...] = ()) -> tuple[np.ndarray, str]:
    """Host indices holding another member of one of ``v``'s anti-affinity groups, and the rule names."""
    hosts: list[int] = []
    names: list[str] = []
    for gi in ws.rules.vm_anti.get(v, ()):
        g = ws.rules.anti[gi]
        others = [m for m in g.members if m != v and m not in unit]
        hosts += [int(h) for h in ws.home[others] if h >= 0]
        names.append(g.name)
    return np.array(hosts, dtype=np.int64), ", ".join(names)


def verdict(
    ws: Tentative, unit: tuple[int, ...], goal: Goal, only: int | None = None, capacity: bool = True
) -> Verdict:
    """Feasible targets for moving ``unit`` (one VM, or an affinity unit together) for ``goal``.

    Filters run in a fixed order and the first one that leaves no host names the reason. ``only``
    restricts the targets to one host (an affinity anchor); ``capacity=False`` stops before the
    capacity check (the hosts the rules allow).
    """
    arr, ws_home = ws.arr, ws.home
    label = (
        ws.arr.vms[unit[0]].name
        if len(unit) == 1
        else "group (" + ", ".join(ws.vm_name(v) for v in unit) + ")"
    )
    mask = arr.active & ~ws.closed
    mask[[int(ws_home[v]) for v in unit if ws_home[v] >= 0]] = False
    if not mask.any():
        return Verdict(
            mask, Reason.NO_TARGET_HOSTS, f"no host other than its own is up and accepting VMs for {label}"
        )
    for v in unit:
        refused = restrict(ws, v, goal, mask, unit)
        if refused is not None:
            return Verdict(mask, *refused)
    if only is not None:
        keep = mask[only]
        mask[:] = False
        mask[only] = keep
        if not keep:
            return Verdict(
                mask,
                Reason.AFFINITY,
                f"{label} must join its group on {arr.hosts[only].name}, which is not eligible",
            )
    if not capacity:
        return Verdict(mask)
    fit = _capacity(ws, unit, mask, label)
    if isinstance(fit, Verdict):
        return fit
    for v in unit:
        prefer(ws, v, goal, fit)
    return Verdict(fit)


def restrict(
    ws: Tentative, v: int, goal: Goal, mask: np.ndarray, unit: tuple[int, ...] = ()
) -> tuple[Reason, str] | None:
    """Apply VM ``v``'s target rules to ``mask`` (H,) in place, in a fixed order: pins, required labels,
    no ping-pong (hard except for a drain), targets that refused it (hard), anti-affinity with the VMs
    outside ``unit``. The reason and text of the first rule that leaves no host, else None. The one rule
    engine of verdict() and feasible_rows()."""
    rules = ws.rules
    if v in rules.pinned:
        mask &= rules.pinned[v]
        if not mask.any():
            allowed = [h.name for h, ok in zip(ws.arr.hosts, rules.pinned[v], strict=True) if ok]
            return Reason.PINNED, (
                f"{ws.vm_name(v)} is pinned to {', '.join(allowed) or 'no known host'}; none can take it"
            )
    if v in rules.required:
        mask &= rules.required[v][0]
        if not mask.any():
            return Reason.LABEL_MISMATCH, (
                f"{ws.vm_name(v)} needs host labels {rules.required[v][1]}; no eligible host has them"
            )
    if goal != "drain" and v in rules.left:
        mask[rules.left[v]] = False
        if not mask.any():
            return (
                Reason.COOLDOWN,
                f"{ws.vm_name(v)} would go to a host it left within the cooldown",
            )
    if v in rules.refused:
        mask[rules.refused[v]] = False
        if not mask.any():
            hosts = ", ".join(ws.arr.hosts[h].name for h in rules.refused[v])
            return (
                Reason.COOLDOWN,
                f"{ws.vm_name(v)}: the hosts it may go to refused it in a pre-check within the cooldown "
                f"({hosts})",
            )
    bad, rule_names = anti_forbidden(ws, v, unit)
    if bad.size:
        mask[bad] = False
        if not mask.any():
            return (
                Reason.ANTI_AFFINITY,
                f"{ws.vm_name(v)}: every eligible host holds a member of {rule_names}",
            )
    return None


def prefer(ws: Tentative, v: int, goal: Goal, mask: np.ndarray) -> None:
    """Narrow the feasible ``mask`` (H,) in place to ``v``'s preferred hosts (preferred labels; for a
    drain, not a host it left within the cooldown) when any of them is in it."""
    rules = ws.rules
    pref = rules.preferred.get(v)
    if goal == "drain" and v in rules.left:
        pref = np.ones_like(mask) if pref is None else pref.copy()
        pref[rules.left[v]] = False
    if pref is not None and (mask & pref).any():
        mask &= pref


def _capacity(ws: Tentative, unit: tuple[int, ...], mask: np.ndarray, label: str) -> np.ndarray | Verdict:
    arr = ws.arr
    d = arr.demand[list(unit)].sum(axis=0)
    if len(unit) == 1:
        missing = ws.sig_missing[ws.sig[unit[0]]]
    else:
        paths = np.unique(np.concatenate([arr.vm_paths[v] for v in unit]))
        missing = (~ws.present[:, paths]).astype(np.float64) @ arr.path_bytes[paths] if paths.size else 0.0
    ok = room_for(ws, d, missing)
    fit = mask & ok.all(axis=0)
    if fit.any():  # the common case: no need to say which resource is short
        return fit
    for r, reason, unit_name in (
        (1, Reason.NO_MEMORY, "memory"),
        (0, Reason.NO_CPU, "cpu"),
        (2, Reason.NO_DISK, "disk"),
    ):
        if not (mask & ok[r]).any():
            free = arr.mark - ws.used
            best = int(np.argmax(np.where(mask, free[:, r], -np.inf)))
            need = _amount(d[r], r)
            have = _amount(max(free[best, r], 0.0), r)
            return Verdict(
                mask & ok[r],
                reason,
                f"{label} needs {need} {unit_name}; the largest free under the mark on an eligible "
                f"host is {have} ({arr.hosts[best].name})",
            )
    return Verdict(fit, Reason.NO_FIT, f"{label} fits no eligible host in cpu, memory and disk at once")


def room_for(ws: Tentative, demand: np.ndarray, missing: np.ndarray | float) -> np.ndarray:
    """(3, ...) bool: each host keeps cpu, memory and disk at or under its marks with ``demand`` (3,) or
    (k, 1, 3) added, plus ``missing`` backing-file bytes on disk (broadcast like the hosts)."""
    arr, used = ws.arr, ws.used
    d = np.asarray(demand)
    cpu = fits(used[:, 0], d[..., 0], arr.mark[:, 0])
    mem = fits(used[:, 1], d[..., 1], arr.mark[:, 1])
    # no host with a known disk size: nothing to check (the common case, and half the work)
    disk = fits(used[:, 2], d[..., 2] + missing, arr.mark[:, 2]) if arr.disk_limited else np.ones_like(cpu)
    return np.stack([cpu, mem, disk])


def _amount(x: float, r: int) -> str:
    return f"{x:.2f} cores" if r == 0 else f"{x / GIB:.1f} GiB"


def feasible_rows(ws: Tentative, vs: np.ndarray, missing: np.ndarray, goal: Goal = "hotspot") -> np.ndarray:
    """(k, H) bool: which targets each VM in ``vs`` may move to for ``goal``, vectorised: the same rules as
    verdict() (through restrict() and prefer()), capacity for all of them at once.

    ``missing`` (k, H) are the backing bytes each move would bring (for the disk check).
    """
    arr, rules = ws.arr, ws.rules
    k = vs.size
    m = np.broadcast_to(arr.active & ~ws.closed, (k, arr.n_hosts)).copy()
    m[np.arange(k), ws.home[vs]] = False
    m &= room_for(ws, arr.demand[vs][:, None, :], missing).all(axis=0)
    for i in np.flatnonzero(rules.has_target_rule[vs]):
        v = int(vs[i])
        restrict(ws, v, goal, m[i])
        prefer(ws, v, goal, m[i])
    return m
