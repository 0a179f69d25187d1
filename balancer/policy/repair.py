"""Affinity repair: fix placement rules that are already broken, before any hotspot or balance move.

Triggers: an anti-affinity group (``rules.anti_affinity`` or a shared ``vm.tags.groups`` tag) with two
or more members on one active host, or an affinity group whose members run on more than one host.

Anti-affinity: on each shared host one member stays (one that cannot move, else the one most
expensive to move with its affinity partners on that host, then name) and the others leave, each with
its affinity partners on that host as one unit, to the host holding most of the rest of its affinity
group when it may, else to the cheapest feasible host (ties: least imbalance). A member whose affinity
group holds another member of the same anti-affinity group on that host stays: the two rules
contradict each other there, and the planner does not break one to mend the other (reported).
Affinity: members join the host that holds most of the group (ties: name), when it is active; a
member this plan already moved stays put and the group joins it instead (a VM moves once per plan).

Limits: repairs are not capped by ``max_moves_per_tick`` (a broken rule is not a matter of taste);
cooldown, quarantine, exclusion and convergence apply as for any non-drain move. A member that cannot
be moved is reported with its reason.
"""

from __future__ import annotations

from collections import Counter

from balancer.model import Move
from balancer.policy.arrays import GIB
from balancer.policy.workspace import Workspace
from balancer.reasons import Reason


def run(ws: Workspace) -> None:
    for g in ws.rules.anti:
        homes = ws.home[list(g.members)]
        for h, count in sorted(Counter(homes.tolist()).items()):
            if h < 0 or count < 2 or not ws.arr.active[h]:
                continue
            here = [m for m in g.members if ws.home[m] == h]
            here.sort(key=lambda m: (ws.blocker(m, "repair") is None, -_unit_cost(ws, _unit(ws, m, h)), m))
            why = f"anti-affinity {g.name!r}: {ws.vm_name(here[0])} stays on {ws.host_name(h)}"
            for m in here[1:]:
                unit = _unit(ws, m, h)
                clash = [u for u in unit if u != m and u in g.members]
                if clash:
                    ws.skip(
                        "vm",
                        ws.vm_name(m),
                        Reason.AFFINITY,
                        f"rules conflict: affinity {ws.rules.affinity[ws.rules.vm_affinity[m]].name!r} keeps "
                        f"{ws.vm_name(m)} with {ws.vm_name(clash[0])}, anti-affinity {g.name!r} keeps them "
                        f"apart; left on {ws.host_name(h)}",
                    )
                    continue
                _repair(ws, unit, None, why)
    for g in ws.rules.affinity:
        counts = Counter(int(ws.home[m]) for m in g.members if ws.home[m] >= 0)
        if len(counts) < 2:
            continue
        # a member this plan already moved cannot move again: the group gathers where it went
        settled = {int(ws.home[m]) for m in g.members if ws.moved[m] and ws.home[m] >= 0}
        anchor = min(settled or counts, key=lambda h: (-counts[h], h))
        for m in g.members:
            if ws.home[m] >= 0 and ws.home[m] != anchor and ws.arr.active[ws.home[m]]:
                _repair(ws, (m,), anchor, f"affinity {g.name!r}: joins the group on {ws.host_name(anchor)}")


def _unit(ws: Workspace, v: int, h: int) -> tuple[int, ...]:
    """``v`` and the members of its affinity group on host ``h`` that this plan has not moved: they
    leave together, or an anti-affinity repair would split the group."""
    gi = ws.rules.vm_affinity.get(v)
    if gi is None:
        return (v,)
    partners = [m for m in ws.rules.affinity[gi].members if m != v and ws.home[m] == h and not ws.moved[m]]
    return (v, *partners)


def _unit_cost(ws: Workspace, unit: tuple[int, ...]) -> float:
    return float(sum(ws.costs.base[m] for m in unit))


def _group_home(ws: Workspace, unit: tuple[int, ...]) -> int | None:
    """The active host holding most of the rest of the unit's affinity group (ties: index); None if none."""
    gi = ws.rules.vm_affinity.get(unit[0])
    if gi is None:
        return None
    counts = Counter(
        int(ws.home[m]) for m in ws.rules.affinity[gi].members if m not in unit and ws.home[m] >= 0
    )
    active = [h for h in counts if ws.arr.active[h]]
    return min(active, key=lambda h: (-counts[h], h)) if active else None


def _repair(ws: Workspace, unit: tuple[int, ...], only: int | None, why: str) -> None:
    v = unit[0]
    blocked = [(m, b) for m in unit if (b := _blocker(ws, m)) is not None]
    if blocked:
        m, (reason, text) = blocked[0]
        if m == v:
            ws.skip("vm", ws.vm_name(v), reason, f"{text} (needed by {why})")
        else:
            ws.skip(
                "vm",
                ws.vm_name(v),
                Reason.AFFINITY,
                f"moves with its affinity partner {ws.vm_name(m)}, which may not: {text} (needed by {why})",
            )
        return
    found = ws.candidates(unit, "repair", only=only)
    if not found.ok:
        ws.skip("vm", ws.vm_name(v), found.reason or Reason.NO_FIT, f"{found.detail} (needed by {why})")
        return
    # leaving for anti-affinity: go where the rest of its affinity group is, if it may, not somewhere
    # the affinity repair would have to move it from again
    home = _group_home(ws, unit) if only is None else None
    target = home if home is not None and found.mask[home] else ws.choose(unit, found.mask)
    for m in unit:
        together = f"; with its affinity partner {ws.vm_name(v)}" if m != v else ""

        def detail(mv: Move, why: str = why + together) -> str:
            return f"{why}; {mv.cost.total_bytes / GIB:.1f} GiB to copy"

        ws.move(m, target, Reason.AFFINITY_REPAIR, detail)


def _blocker(ws: Workspace, v: int) -> tuple[Reason, str] | None:
    blocker = ws.blocker(v, "repair")
    if blocker is None and ws.moved[v]:
        return Reason.AFFINITY, f"{ws.vm_name(v)} already moves in this plan; a VM moves once per plan"
    return blocker
