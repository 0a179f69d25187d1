"""Affinity repair: fix placement rules that are already broken, before any hotspot or balance move.

Triggers: an anti-affinity group (``rules.anti_affinity`` or a shared ``vm.tags.groups`` tag) with two
or more members on one active host, or an affinity group whose members run on more than one host.

Anti-affinity: on each shared host one member stays (one that cannot move, else the one most
expensive to move, then name) and the others go to the cheapest feasible host (ties: least imbalance).
Affinity: members join the host that holds most of the group (ties: name), when it is active.

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
            here.sort(key=lambda m: (ws.blocker(m, "repair") is None, -float(ws.costs.base[m]), m))
            for m in here[1:]:
                _repair(
                    ws, m, None, f"anti-affinity {g.name!r}: {ws.vm_name(here[0])} stays on {ws.host_name(h)}"
                )
    for g in ws.rules.affinity:
        counts = Counter(int(ws.home[m]) for m in g.members if ws.home[m] >= 0)
        if len(counts) < 2:
            continue
        anchor = min(counts, key=lambda h: (-counts[h], h))
        for m in g.members:
            if ws.home[m] >= 0 and ws.home[m] != anchor and ws.arr.active[ws.home[m]]:
                _repair(ws, m, anchor, f"affinity {g.name!r}: joins the group on {ws.host_name(anchor)}")


def _repair(ws: Workspace, v: int, only: int | None, why: str) -> None:
    blocker = ws.blocker(v, "repair")
    if blocker is not None:
        ws.skip("vm", ws.vm_name(v), blocker[0], f"{blocker[1]} (needed by {why})")
        return
    found = ws.candidates((v,), "repair", only=only)
    if not found.ok:
        ws.skip("vm", ws.vm_name(v), found.reason or Reason.NO_FIT, f"{found.detail} (needed by {why})")
        return

    def detail(mv: Move) -> str:
        return f"{why}; {mv.cost.total_bytes / GIB:.1f} GiB to copy"

    ws.move(v, ws.choose((v,), found.mask), Reason.AFFINITY_REPAIR, detail)
