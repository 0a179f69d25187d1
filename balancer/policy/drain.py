"""Drain: every VM on a draining host gets a target, largest bytes to copy first; what is stuck is a Skip.

Triggers: hosts with ``state == DRAINING`` or named in ``state.draining`` (a drain request on a down or
excluded host is reported as a host Skip: ``host_down`` / ``excluded``).

Order: VMs by bytes to copy onto a target that holds their chain (overlays + RAM with re-sends),
largest first, then memory, then name: the big ones claim space while there is most of it. When some
VM is then stuck, the drain is planned again with the VMs hardest to fit (largest share of a target's
room) first, and that plan is kept if it leaves fewer VMs behind.

Target: among the feasible hosts (constraints.py), the one with the fewest bytes to copy (a host that
already holds the backing file saves the chain copy), then the least resulting imbalance, then name.
Affinity groups leave as one unit, to the host where the rest of the group runs or together to one
target. A VM that fits nowhere for capacity gets room made (room.py): the cheapest set of other VMs is
moved off a host the rules allow first (reason ``make_room``, flagged ``drain``; planned before it, so
the moves run in order).

Limits: drains are not capped by ``max_moves_per_tick``; cooldown does not apply (quarantine, exclusion,
pins and labels do); a VM predicted not to converge is still drained and flagged
``would_not_converge``; a VM that is not running blocks the drain and is reported (``not_running``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from balancer.model import Move
from balancer.policy import room
from balancer.policy.arrays import GIB
from balancer.policy.constraints import Verdict
from balancer.policy.workspace import Workspace
from balancer.reasons import Reason

CAPACITY = (Reason.NO_MEMORY, Reason.NO_CPU, Reason.NO_DISK, Reason.NO_FIT)


def run(ws: Workspace) -> None:
    arr = ws.arr
    for h, why in sorted(arr.drain_refused.items()):
        reason = Reason.HOST_DOWN if arr.hosts[h].state == "down" else Reason.EXCLUDED
        ws.skip("host", arr.hosts[h].name, reason, why)
    hosts = np.flatnonzero(arr.draining)
    if hosts.size == 0:
        return
    on = np.flatnonzero(np.isin(ws.home, hosts))
    base = ws.costs.base
    start = ws.checkpoint()
    _place_all(ws, sorted(on.tolist(), key=lambda v: (-base[v], -arr.demand[v, 1], v)))
    _retry_stuck(ws, hosts)
    if np.isin(ws.home, hosts).any() and arr.active.any():  # stuck: the hardest to fit first may do better
        first, stuck = ws.checkpoint(), int(np.isin(ws.home, hosts).sum())
        ws.restore(start)
        share = (arr.demand[on, :2] / np.maximum(arr.mark[arr.active, :2].max(axis=0), 1e-12)).max(axis=1)
        _place_all(ws, [int(v) for v in on[np.lexsort((on, -base[on], -share))]])
        _retry_stuck(ws, hosts)
        if int(np.isin(ws.home, hosts).sum()) >= stuck:
            ws.restore(first)
    for h in hosts.tolist():
        left = ws.vms_on(h)
        if left.size:
            stuck_skips = [
                s for s in ws.skips if s.subject == "vm" and ws.arr.vm_index[s.name] in set(left.tolist())
            ]
            first_reason = stuck_skips[0].reason if stuck_skips else Reason.NO_FIT
            names = ", ".join(f"{s.name} ({s.reason})" for s in stuck_skips[:5])
            ws.skip("host", ws.host_name(h), first_reason, f"{left.size} VM(s) cannot leave yet: {names}")


def _retry_stuck(ws: Workspace, hosts: np.ndarray) -> None:
    """Try the VMs still on draining hosts once more: later moves may have opened room for them."""
    stuck = [int(v) for v in np.flatnonzero(np.isin(ws.home, hosts)) if ws.blocker(int(v), "drain") is None]
    for v in stuck:
        ws.unskip("vm", ws.vm_name(v))
    _place_all(ws, stuck)


def _place_all(ws: Workspace, order: list[int]) -> None:
    """Give each VM in ``order`` a target (making room when none has it), or a VM skip."""
    for v in order:
        if ws.moved[v]:
            continue
        if v in ws.rules.vm_affinity:
            _drain_group(ws, v)
            continue
        blocker = ws.blocker(v, "drain")
        if blocker is not None:
            ws.skip("vm", ws.vm_name(v), *blocker)
            continue
        found = ws.candidates((v,), "drain")
        if not found.ok and found.reason in CAPACITY:
            found = _make_room(ws, v) or found
        if not found.ok:
            ws.skip("vm", ws.vm_name(v), found.reason or Reason.NO_FIT, found.detail)
            continue
        _move(ws, (v,), ws.choose((v,), found.mask), "")


def _move(ws: Workspace, unit: tuple[int, ...], t: int, why: str) -> None:
    for v in unit:
        flags = () if ws.costs.converges[v] else (Reason.WOULD_NOT_CONVERGE,)
        late = "; predicted not to converge at the bandwidth cap" if flags else ""

        def detail(mv: Move, why: str = why + late) -> str:
            return (
                f"drain {mv.source}: {mv.vm} to {mv.target}, {mv.cost.total_bytes / GIB:.1f} GiB to copy"
                f" ({mv.cost.backing_bytes / GIB:.1f} GiB backing), imbalance "
                f"{mv.imbalance_before:.3f}→{mv.imbalance_after:.3f}{why}"
            )

        ws.move(v, t, Reason.DRAIN, detail, flags)


def _drain_group(ws: Workspace, v: int) -> None:
    """Move the members of ``v``'s affinity group that are on draining hosts, as one unit."""
    arr, rules = ws.arr, ws.rules
    g = rules.affinity[rules.vm_affinity[v]]
    leaving = tuple(m for m in g.members if ws.home[m] >= 0 and arr.draining[ws.home[m]] and not ws.moved[m])
    staying = [int(ws.home[m]) for m in g.members if m not in leaving and ws.home[m] >= 0]
    blocked = [(m, b) for m in leaving if (b := ws.blocker(m, "drain")) is not None]
    if blocked:
        for m, (reason, detail) in blocked:
            ws.skip("vm", ws.vm_name(m), reason, detail)
        who = ", ".join(f"{ws.vm_name(m)} ({r})" for m, (r, _) in blocked)
        for m in leaving:
            ws.skip(
                "vm", ws.vm_name(m), Reason.AFFINITY, f"moves with affinity group {g.name!r}; blocked: {who}"
            )
        return
    anchor = None
    if staying:
        counts = Counter(staying)
        anchor = min(counts, key=lambda h: (-counts[h], h))
    found = ws.candidates(leaving, "drain", only=anchor)
    if not found.ok:
        for m in leaving:
            ws.skip("vm", ws.vm_name(m), found.reason or Reason.NO_FIT, found.detail)
        return
    _move(ws, leaving, ws.choose(leaving, found.mask), f"; with affinity group {g.name!r}")


def _make_room(ws: Workspace, v: int) -> Verdict | None:
    """Open a host the rules allow for ``v`` by first moving other VMs off it; the new verdict, or None."""
    opening = room.cheapest(ws, v, "drain")
    if opening is None:
        return None
    why = f"drain of {ws.host_name(int(ws.home[v]))}"
    return ws.candidates((v,), "drain") if room.make(ws, v, opening, Reason.DRAIN, why) else None
