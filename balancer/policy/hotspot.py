"""Hotspot relief: bring each host that stayed above its mark back under it, copying the fewest bytes.

Triggers: an active host with cpu or memory above its high-water mark now *and* in each of the last
``hold_ticks`` smoothed samples (``host.cpu_history`` / ``memory_history``; a shorter history has not
persisted). A host above the mark that has not persisted is reported (``not_persisted``).

The problem (bench/exact.py writes it as an integer program; tests hold us within 10 % of its optimum):
choose moves so that every hot host ends at or under its mark in each resource that persisted over it,
every target stays under its marks (cpu, memory, disk) after every move, and the total bytes to copy is
least. Mostly VMs leave the hot hosts; other VMs move only to open room (below). A host over a mark
takes no VMs until its own relief is planned; then it is a target like any other.

Per host: bytes depend on the target only through the backing files it lacks (cost.py), so each VM is
priced at its cheapest feasible target and the selection is a minimum-cost cover (cover.py). The chosen
VMs are placed hardest first, each on its cheapest target; a VM that no longer fits anywhere (earlier
placements took the room) makes the rest be re-solved.

Across hosts the order matters (one host's relief can take the room another needs). With up to
``GUIDED_MAX_HOSTS`` hot hosts a few attempts run from the same starting point and the plan keeps the
one that relieves most hosts with the fewest bytes (ATTEMPTS: hottest first / reverse / failed-first,
every order when ≤ 3 hot hosts; target ties to least imbalance or tightest fit; prices guided by shadow
prices of target capacity from a Lagrangian relaxation, shadow.py); when they interact, a joint search
takes each host's cheapest covers (cover.cheapest_covers) and places combinations cheapest first. With
more hot hosts one pass, hottest first, tightest fit: its cost grows linearly with the hot hosts.

Making room (room.py): in every round a VM with no target is priced at its cheapest opening (moving
other VMs off a target first, reason ``make_room``) when that could make a cheaper cover than any
without it; the cover then decides. The hosts that could not be relieved get a second pass once every
other host is (and is a target again), and only then are reported.

Limits: none on the number of moves (the executor paces them). A host that cannot be brought under its
mark even so is left alone (``no_fit``, with why); its VMs that could not move are listed as VM skips.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import numpy as np

from balancer.model import Move
from balancer.policy import objective, room
from balancer.policy.arrays import GIB
from balancer.policy.constraints import feasible_rows
from balancer.policy.cover import cheapest_covers, min_cost_cover
from balancer.policy.shadow import adjusted, inverse_capacity, shadow_prices
from balancer.policy.workspace import Checkpoint, Workspace
from balancer.reasons import Reason


def hot_hosts(ws: Workspace) -> tuple[list[int], np.ndarray]:
    """Hosts to relieve (hottest first) and (H, 2) which of their resources persisted over the mark."""
    arr = ws.arr
    over = objective.overloaded(ws.used, arr.mark) & arr.active[:, None]
    hot = over & arr.persisted
    for h in np.flatnonzero(over.any(axis=1) & ~hot.any(axis=1)):
        ticks = ws.thresholds.hold_ticks
        ws.skip(
            "host",
            ws.host_name(int(h)),
            Reason.NOT_PERSISTED,
            f"above its mark now, but not for the last {ticks} ticks",
        )
    ratio = np.divide(
        ws.used[:, :2], arr.mark[:, :2], out=np.zeros((arr.n_hosts, 2)), where=arr.mark[:, :2] > 0
    )
    hosts = np.flatnonzero(hot.any(axis=1))
    order = sorted(hosts.tolist(), key=lambda h: (-float(ratio[h][hot[h]].max()), h))
    return order, hot


def excess(ws: Workspace, h: int, resources: np.ndarray) -> np.ndarray:
    """(2,) cpu/memory that must leave ``h`` to bring it under its mark (0 where not hot)."""
    return np.where(resources, np.maximum(ws.used[h, :2] - ws.arr.mark[h, :2], 0.0), 0.0)


def run(ws: Workspace) -> None:
    order, hot = hot_hosts(ws)
    if not order:
        return
    # a host over its mark takes no VMs until its own relief is planned
    closed = ws.closed.copy()
    ws.closed |= objective.overloaded(ws.used, ws.arr.mark).any(axis=1)
    failed = _first_pass(ws, order, hot, closed)
    # second pass: the hosts that failed, once every other host is relieved (and a target again)
    _relieve_all(ws, failed, hot, "tight", None, closed, report=True)
    ws.closed = closed


def _relieve_all(
    ws: Workspace,
    hosts: list[int],
    hot: np.ndarray,
    tie: str,
    lam: np.ndarray | None,
    closed: np.ndarray,
    report: bool = False,
) -> list[int]:
    """Relieve ``hosts`` in turn (each, once relieved, is a target again unless ``closed``); the failed."""
    failed = []
    for h in hosts:
        if _relieve(ws, h, hot[h], tie, lam, report):
            ws.closed[h] = closed[h]
        else:
            failed.append(h)
    return failed


def _first_pass(ws: Workspace, order: list[int], hot: np.ndarray, closed: np.ndarray) -> list[int]:
    """Relieve the hot hosts without making room; the ones that could not be relieved, hottest first."""
    if len(order) > GUIDED_MAX_HOSTS:  # many hot hosts: one pass, linear in their number
        return _relieve_all(ws, order, hot, "tight", None, closed)
    start = ws.checkpoint()
    bound = _lower_bound(ws, order, hot, start)
    best: tuple[tuple[int, float, int], Checkpoint, list[int]] | None = None
    tried: set[tuple[tuple[int, ...], str]] = set()
    failed: list[int] = []
    lam: np.ndarray | None = None
    attempts: list[tuple[str | tuple[int, ...], str]] = list(ATTEMPTS)
    if len(order) <= PERMUTE_MAX_HOSTS:  # few hot hosts: every order, both tie-breaks
        attempts += [(p, tie) for p in itertools.permutations(order) for tie in ("tight", "imbalance")]
    for n, (hosts, tie) in enumerate(attempts):
        if best is not None and best[0][0] == 0 and best[0][1] <= bound:
            break  # every host relieved at the sum of their cheapest covers: nothing to gain
        if isinstance(hosts, tuple):
            hosts_order = list(hosts)
        elif hosts == "failed":  # the hosts the previous attempt could not relieve go first
            hosts_order = failed + [h for h in order if h not in failed]
        else:
            hosts_order = order if hosts == "hottest" else order[::-1]
        if (tuple(hosts_order), tie) in tried or (tie == "guided" and len(order) < 2):
            continue
        tried.add((tuple(hosts_order), tie))
        ws.restore(start)
        if tie == "guided" and lam is None:
            lam = _prices(ws, order, hot, best[0][1] if best and best[0][0] == 0 else np.inf)
        failed = _relieve_all(ws, hosts_order, hot, tie, lam if tie == "guided" else None, closed)
        spent = sum(m.cost.total_bytes for m in ws.moves[len(start.moves) :])
        score = (len(failed), float(spent), n)
        if best is None or score < best[0]:
            best = (score, ws.checkpoint(), failed)
    assert best is not None
    if len(order) > 1 and (best[0][0] > 0 or best[0][1] > bound):
        found = _combinations(ws, order, hot, start, closed)
        if found is not None and found[0] < best[0][:2]:
            best = ((*found[0], len(attempts)), found[1], [])
    ws.restore(best[1])
    return [h for h in order if h in best[2]]


#: (host order, target choice) tried in turn; the plan keeps the attempt that relieves most hosts with
#: the fewest bytes (the earlier attempt on a tie). Orders: hottest first, reverse, the hosts the
#: previous attempt failed first. Target choice among equally cheap targets: least imbalance, or the
#: tightest fit (keeps large holes for the VMs that need them); "guided" prices target capacity with
#: shadow prices (shadow.py) in both the choice of VMs and of targets.
ATTEMPTS = (
    ("hottest", "imbalance"),
    ("hottest", "tight"),
    ("failed", "tight"),
    ("reverse", "tight"),
    ("hottest", "guided"),
    ("failed", "guided"),
)
GUIDED_MAX_HOSTS = 6  # above this many hot hosts the shadow prices cost more time than they save
PERMUTE_MAX_HOSTS = 3
ROOM_PRICED = 4  # VMs without a target priced at an opening (room.py) per hot host and round
COVERS_PER_HOST = 16  # cheapest covers per hot host in the joint search
COMBINATION_TRIES = 120  # combinations placed at most
COMBINATIONS_KEPT = 4  # stop after this many place completely


def _host_covers(ws: Workspace, h: int, hot: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """VMs on ``h`` that may go, their cheapest price, and a few cheapest covers of its excess."""
    vs, rows, bytes_ = candidates(ws, h)
    price = np.where(rows, bytes_, np.inf).min(axis=1) if vs.size else np.zeros(0)
    return vs, price, cheapest_covers(ws.arr.demand[vs, :2], excess(ws, h, hot[h]), price, COVERS_PER_HOST)


def _lower_bound(ws: Workspace, order: list[int], hot: np.ndarray, start: Checkpoint) -> float:
    """Sum of each hot host's cheapest cover alone (no joint plan copies less, shared backing aside)."""
    ws.restore(start)
    total = 0.0
    for h in order:
        vs, rows, bytes_ = candidates(ws, h)
        price = np.where(rows, bytes_, np.inf).min(axis=1) if vs.size else np.zeros(0)
        pick = min_cost_cover(ws.arr.demand[vs, :2], excess(ws, h, hot[h]), price)
        if pick is not None:
            total += float(price[pick].sum())
    return total * (1 + 1e-9)


def _combinations(
    ws: Workspace, order: list[int], hot: np.ndarray, start: Checkpoint, closed: np.ndarray
) -> tuple[tuple[int, float], Checkpoint] | None:
    """Joint search: per host a few cheapest covers, combinations tried cheapest first (best-first),
    each placed for real; the cheapest in bytes of the first few that place completely is kept."""
    ws.restore(start)
    per_host = [(h, *_host_covers(ws, h, hot)) for h in order]
    if any(not covers for *_, covers in per_host):
        return None
    totals = [[float(price[c].sum()) for c in covers] for _, _, price, covers in per_host]
    first = (0,) * len(per_host)
    heap = [(sum(t[0] for t in totals), first)]
    seen = {first}
    best: tuple[tuple[int, float], Checkpoint] | None = None
    feasible = 0
    for _ in range(COMBINATION_TRIES):
        if not heap or feasible >= COMBINATIONS_KEPT:
            break
        _, pick = heapq.heappop(heap)
        ws.restore(start)
        if all(
            _place(ws, h, vs[covers[i]], closed) for (h, vs, _, covers), i in zip(per_host, pick, strict=True)
        ):
            feasible += 1
            spent = float(sum(m.cost.total_bytes for m in ws.moves[len(start.moves) :]))
            if best is None or spent < best[0][1]:
                best = ((0, spent), ws.checkpoint())
        for j in range(len(pick)):
            nxt = (*pick[:j], pick[j] + 1, *pick[j + 1 :])
            if nxt[j] < len(totals[j]) and nxt not in seen:
                seen.add(nxt)
                heapq.heappush(heap, (sum(t[i] for t, i in zip(totals, nxt, strict=True)), nxt))
    return best


def _place(ws: Workspace, h: int, vms: np.ndarray, closed: np.ndarray) -> bool:
    """Move ``vms`` off ``h``, each to its cheapest feasible target (ties: tightest fit); ``h`` is then a
    target again unless ``closed``."""
    for v in sorted(vms.tolist(), key=lambda v: (-float(ws.arr.demand[v, :2].sum()), v)):
        found = ws.candidates((v,), "hotspot")
        if not found.ok:
            return False
        cost = np.where(found.mask, ws.bytes_rows(np.array([v]))[0], np.inf)
        ws.move(
            v, ws.choose((v,), cost <= cost.min() * (1 + 1e-9), "tight"), Reason.HOTSPOT, _describe(ws, h)
        )
    ws.closed[h] = closed[h]
    return True


def _prices(ws: Workspace, order: list[int], hot: np.ndarray, upper: float) -> np.ndarray:
    problems = []
    for h in order:
        vs, rows, bytes_ = candidates(ws, h)
        problems.append((ws.arr.demand[vs], rows, bytes_, excess(ws, h, hot[h])))
    if not np.isfinite(upper):
        upper = sum(float(np.where(r, b, np.inf).min(axis=1).sum()) for _, r, b, _ in problems if r.size)
    return shadow_prices(problems, ws.arr.mark - ws.used, inverse_capacity(ws.arr.cap), upper)


def candidates(ws: Workspace, h: int, keep_all: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """VMs on ``h`` that may move for a hotspot and have a target now (``keep_all``: with or without):
    indices, (k, H) feasible, bytes."""
    vs = ws.vms_on(h)
    vs = vs[ws.movable("hotspot")[vs]]
    missing = ws.missing_rows(vs)
    rows = feasible_rows(ws, vs, missing)
    bytes_ = ws.costs.base[vs, None] + missing
    keep = np.ones(vs.size, dtype=bool) if keep_all else rows.any(axis=1)
    return vs[keep], rows[keep], bytes_[keep]


def _relieve(
    ws: Workspace,
    h: int,
    resources: np.ndarray,
    tie: str,
    lam: np.ndarray | None = None,
    report: bool = False,
) -> bool:
    """Plan the moves that bring ``h`` under its mark; False (and nothing planned) when impossible.

    A VM with no target is priced at its cheapest opening (room.py) and, if chosen, has room made for
    it first. ``report``: a host that cannot be relieved is reported (host and VM skips).
    """
    start = ws.mark()
    need = excess(ws, h, resources)
    for _ in range(ws.arr.n_vms + 1):  # each round plans at least one move, or gives up
        if not np.any(need > 0):
            return True
        vs, rows, bytes_ = candidates(ws, h, keep_all=True)
        if lam is not None:
            bytes_ = adjusted(bytes_, ws.arr.demand[vs], inverse_capacity(ws.arr.cap), lam)
        cost = np.where(rows, bytes_, np.inf)
        price = cost.min(axis=1)
        direct = min_cost_cover(ws.arr.demand[vs, :2], need, price)
        openings = _openings(ws, vs, need, price, direct)
        pick = min_cost_cover(ws.arr.demand[vs, :2], need, price) if openings else direct
        if pick is None or pick.size == 0:
            break
        # place the chosen VMs, hardest (largest share of what must leave) first; when one no longer fits
        # anywhere (earlier placements took the room), re-solve what is still needed
        planned = len(ws.moves)
        share = (ws.arr.demand[vs[pick], :2] / np.maximum(need, 1e-12))[:, need > 0].sum(axis=1)
        for i in pick[np.lexsort((pick, -share))].tolist():
            v = int(vs[i])
            if i in openings and not _open(ws, v, h, openings[i]):
                break
            found = ws.candidates((v,), "hotspot")
            targets = found.mask & (cost[i] <= price[i] * (1 + 1e-9))  # cheapest (shadow-priced when guided)
            if not targets.any():
                targets = found.mask & (cost[i] <= np.where(found.mask, cost[i], np.inf).min() * (1 + 1e-9))
            if not targets.any():
                break
            ws.move(
                v,
                ws.choose((v,), targets, "tight" if tie == "guided" else tie),
                Reason.HOTSPOT,
                _describe(ws, h),
            )
            need = excess(ws, h, resources)
            if not np.any(need > 0):
                return True
        if len(ws.moves) == planned:
            break
    ws.rollback(start)
    if report:
        vs, _, _ = candidates(ws, h)
        _report_stuck(ws, h, need, vs)
    return False


def _openings(
    ws: Workspace, vs: np.ndarray, need: np.ndarray, price: np.ndarray, direct: np.ndarray | None
) -> dict[int, room.Opening]:
    """Openings (room.py) for the VMs in ``vs`` without a target, their price set in ``price`` (in place).

    Only VMs whose own move costs less than ``direct``, the cheapest cover without any opening, are
    tried (no cover holding a dearer one can be cheaper), cheapest first, at most ``ROOM_PRICED``.
    """
    bound = float(price[direct].sum()) if direct is not None else np.inf
    lacking = np.flatnonzero(~np.isfinite(price) & (ws.costs.base[vs] < bound))
    found: dict[int, room.Opening] = {}
    for i in lacking[np.lexsort((lacking, ws.costs.base[vs[lacking]]))][:ROOM_PRICED].tolist():
        opening = room.cheapest(ws, int(vs[i]), "hotspot")
        if opening is not None and opening.bytes < bound:
            found[i], price[i] = opening, opening.bytes
    return found


def _open(ws: Workspace, v: int, h: int, opening: room.Opening) -> bool:
    """Make room for ``v`` (leaving hot host ``h``) as ``opening`` says, re-priced on the current state."""
    found = room.cheapest(ws, v, "hotspot") or opening
    return room.make(ws, v, found, Reason.HOTSPOT, f"relief of {ws.host_name(h)}")


def _describe(ws: Workspace, h: int) -> Callable[[Move], str]:
    mark = ws.arr.mark[h, :2] / np.where(ws.arr.cap[h, :2] > 0, ws.arr.cap[h, :2], 1.0)

    def detail(mv: Move) -> str:
        parts = [
            f"{r} {mv.source_load.before[r]:.0%}→{mv.source_load.after[r]:.0%} (mark {m:.0%})"  # type: ignore[union-attr]
            for r, m in zip(("cpu", "memory"), mark, strict=True)
        ]
        return f"relieve {mv.source}: {', '.join(parts)}; {mv.cost.total_bytes / GIB:.1f} GiB to copy"

    return detail


def _need_text(need: np.ndarray) -> str:
    parts: list[str] = []
    if need[0] > 0:
        parts.append(f"{need[0]:.2f} cores")
    if need[1] > 0:
        parts.append(f"{need[1] / GIB:.1f} GiB memory")
    return " and ".join(parts)


def _report_stuck(ws: Workspace, h: int, need: np.ndarray, vs: np.ndarray) -> None:
    """A host that cannot be brought under its mark: say why, host and VMs."""
    on = ws.vms_on(h)
    for v in on.tolist():
        b = ws.blocker(v, "hotspot")
        if b is not None:
            ws.skip("vm", ws.vm_name(v), *b)
        elif v not in set(vs.tolist()):
            found = ws.candidates((v,), "hotspot")
            if not found.ok:
                ws.skip("vm", ws.vm_name(v), found.reason or Reason.NO_FIT, found.detail)
    offer = ws.arr.demand[vs, :2].sum(axis=0) if vs.size else np.zeros(2)
    ws.skip(
        "host",
        ws.host_name(h),
        Reason.NO_FIT,
        f"needs {_need_text(need)} moved off; the {vs.size} VM(s) that may move and have a target offer "
        f"{offer[0]:.2f} cores, {offer[1] / GIB:.1f} GiB memory (or do not fit together)",
    )
