"""Admission under limits (pure): which queued moves may start now, and why the others wait.

A move starts only while all of these hold, counting the migrations already running plus those
admitted earlier in the same pass:

* fewer than ``LimitArgs.global_limit(hosts)`` migrations run in the cluster;
* its source has fewer than ``per_source`` outgoing migrations;
* its target has fewer than ``per_target`` incoming migrations;
* on its source and on its target, the caps (MiB/s) of all migrations touching that host plus its
  own stay within ``host_bandwidth_mib_s``.

and before all of them: the moves it needs room from (``Move.after``: the planner found that its
target fits it only once those VMs have left) are neither queued nor running any more. Whether they
succeeded does not matter here; the target's free memory is re-checked when the move starts.

The queue is scanned whole, in (priority, plan order): a move that must wait never blocks later
moves between other hosts (no head-of-line blocking), and whenever a slot frees, the earliest
waiting move that fits gets it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from balancer.executor.args import LimitArgs
from balancer.model import MigrationRecord, Move
from balancer.reasons import Reason


@dataclass(frozen=True)
class Pending:
    """A queued move as admission sees it; ``seq`` is its position in submission (plan) order.

    ``after``: ids of the queued or running moves whose VMs must leave its target first.
    """

    id: str
    source: str
    target: str
    bandwidth_mib_s: int
    priority: int
    seq: int
    after: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Running:
    """A migration holding slots: from admission until its outcome is recorded."""

    id: str
    source: str
    target: str
    bandwidth_mib_s: int


@dataclass(frozen=True)
class Admit:
    id: str


@dataclass(frozen=True)
class Wait:
    id: str
    reason: Reason
    detail: str


Decision = Admit | Wait


class Job(Protocol):
    """A move as an executor holds it (the Runner's and the simulator's alike)."""

    @property
    def record(self) -> MigrationRecord: ...

    @property
    def move(self) -> Move: ...

    @property
    def seq(self) -> int: ...

    @property
    def after(self) -> frozenset[str]: ...


def room_from(move: Move, active: Iterable[Job]) -> frozenset[str]:
    """Record ids of the queued or running moves that take ``move.after``'s VMs off its target."""
    if not move.after:
        return frozenset()
    wanted = set(move.after)
    return frozenset(j.record.id for j in active if j.move.vm in wanted and j.move.source == move.target)


def inputs(queue: Sequence[Job], running: Iterable[Job]) -> tuple[list[Pending], list[Running]]:
    """Admission's view of an executor's queue and running moves (``Job.after`` as from ``room_from``)."""
    held = list(running)
    active = {j.record.id for j in (*queue, *held)}
    pending = [
        Pending(
            j.record.id,
            j.move.source,
            j.move.target,
            j.record.bandwidth_mib_s,
            j.record.priority,
            j.seq,
            j.after & active,
        )
        for j in queue
    ]
    slots = [Running(j.record.id, j.move.source, j.move.target, j.record.bandwidth_mib_s) for j in held]
    return pending, slots


def queue_order(queue: Iterable[Pending]) -> list[Pending]:
    """Priority first (0 = most urgent: manual, drain, ..., balance), then plan order."""
    return sorted(queue, key=lambda p: (p.priority, p.seq))


def effective_bandwidth(requested_mib_s: int, limits: LimitArgs) -> int:
    """A move's cap: its own request (or the default cap), never above one host's budget."""
    wanted = requested_mib_s if requested_mib_s > 0 else limits.bandwidth_mib_s
    return max(1, min(wanted, limits.host_bandwidth_mib_s))


def admit(
    queue: Iterable[Pending], running: Iterable[Running], limits: LimitArgs, host_count: int
) -> list[Decision]:
    """One decision per queued move, in queue order: Admit, or Wait with the first limit it hits."""
    out: list[Decision] = []
    queue, held = list(queue), list(running)
    total = len(held)
    outgoing: Counter[str] = Counter(r.source for r in held)
    incoming: Counter[str] = Counter(r.target for r in held)
    bandwidth: Counter[str] = Counter()
    for r in held:
        bandwidth[r.source] += r.bandwidth_mib_s
        if r.target != r.source:
            bandwidth[r.target] += r.bandwidth_mib_s
    global_limit = limits.global_limit(host_count)
    active = {p.id for p in queue} | {r.id for r in held}
    for p in queue_order(queue):
        wait = _needs_room(p, active) or _blocked(
            p, total, outgoing, incoming, bandwidth, limits, global_limit
        )
        if wait is not None:
            out.append(wait)
            continue
        out.append(Admit(p.id))
        total += 1
        outgoing[p.source] += 1
        incoming[p.target] += 1
        bandwidth[p.source] += p.bandwidth_mib_s
        if p.target != p.source:
            bandwidth[p.target] += p.bandwidth_mib_s
    return out


def _needs_room(p: Pending, active: set[str]) -> Wait | None:
    """Wait while a move that must take a VM off ``p``'s target first is still queued or running."""
    ahead = p.after & active
    if not ahead:
        return None
    return Wait(
        p.id,
        Reason.WAIT_FOR_ROOM,
        f"target {p.target} has room only once {len(ahead)} earlier move(s) off it end: "
        + ", ".join(sorted(ahead)),
    )


def _blocked(
    p: Pending,
    total: int,
    outgoing: Counter[str],
    incoming: Counter[str],
    bandwidth: Counter[str],
    limits: LimitArgs,
    global_limit: int,
) -> Wait | None:
    if total >= global_limit:
        return Wait(p.id, Reason.WAIT_GLOBAL_LIMIT, f"{total} of {global_limit} migrations running")
    if outgoing[p.source] >= limits.per_source:
        return Wait(
            p.id,
            Reason.WAIT_SOURCE_BUSY,
            f"source {p.source} has {outgoing[p.source]} of {limits.per_source} outgoing migrations",
        )
    if incoming[p.target] >= limits.per_target:
        return Wait(
            p.id,
            Reason.WAIT_TARGET_BUSY,
            f"target {p.target} has {incoming[p.target]} of {limits.per_target} incoming migrations",
        )
    budget = limits.host_bandwidth_mib_s
    for host in (p.source, p.target):
        if bandwidth[host] + p.bandwidth_mib_s > budget:
            return Wait(
                p.id,
                Reason.WAIT_BANDWIDTH,
                f"host {host} budget: {bandwidth[host]} + {p.bandwidth_mib_s} MiB/s > {budget} MiB/s",
            )
    return None


def admitted(decisions: Sequence[Decision]) -> list[str]:
    """The ids admitted by one pass, in order."""
    return [d.id for d in decisions if isinstance(d, Admit)]
