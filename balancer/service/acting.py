"""Handing planned moves to the executor: what each automation level starts, and the stored plans.

* ``auto``: the tick's plan is stored approved and every move is submitted.
* ``recommend``: drain moves (and the moves they wait for, ``Move.after``) are the drain request's
  own approval: they are stored as an approved plan of their own and submitted at once, every tick
  they are planned, never waiting on a proposal. The other moves form the proposal: the same
  proposal tick after tick keeps its id (an operator can approve it) and its expiry moves on; a
  different one supersedes it; one the planner stops making expires (``service.proposal_ttl``).
* an operator's approval starts at the next intake (``start_approved``), if its plan is current.

Every write here is the leader's (fenced). A drain move is queued only while its drain is open, in
the same transaction (``Store.create_record(drain_open=...)``), so an undrain racing the tick can
never leave a move of the cancelled drain queued.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from balancer.errors import Conflict
from balancer.executor.runner import Runner, VmBusy
from balancer.metrics.export import Metrics
from balancer.model import MigrationRecord, Move, Plan
from balancer.reasons import Reason
from balancer.service.leadership import LeaderTerm
from balancer.store import Store
from balancer.store.records import Automation, MoveStatus, PlanRow, PlanStatus

log = logging.getLogger("balancer.service")


@dataclass(frozen=True)
class Planned:
    """A submitted move and the stored plan move it came from (None for an operator's migrate)."""

    move: Move
    plan_id: int | None = None
    index: int | None = None


@dataclass
class Term:
    """This process's leadership term and what it runs: one Runner per term."""

    lease: LeaderTerm
    runner: Runner
    planned: dict[str, Planned] = field(default_factory=dict)  # journal id -> where it came from

    @property
    def epoch(self) -> int:
        return self.lease.epoch


@dataclass
class Acting:
    """Submits moves for one tick (or intake) of the leader."""

    store: Store
    term: Term
    metrics: Metrics
    now: float
    open_drains: Mapping[str, int]  # host -> open drain id
    busy: set[str] = field(default_factory=set)  # VMs with an unfinished record anywhere

    def submit(self, move: Move, plan_id: int | None, index: int | None) -> MigrationRecord | None:
        """Queue one stored move; its plan move follows (started, or why not). None when not queued."""
        fence = self.term.lease.fence
        drain_id = self.open_drains.get(move.source) if move.reason == Reason.DRAIN else None
        status, why = None, ""
        if move.reason == Reason.DRAIN and drain_id is None:
            status, why = MoveStatus.WITHDRAWN, f"no open drain of {move.source} any more"
        elif move.vm in self.busy:
            status, why = MoveStatus.SKIPPED, "the VM already has an unfinished migration"
        else:
            try:
                rec = self.term.runner.submit_one(move, plan_id=plan_id, drain_id=drain_id)
            except VmBusy as exc:
                status, why = MoveStatus.SKIPPED, str(exc)
            except Conflict as exc:  # the drain was closed between the plan and the queue
                status, why = MoveStatus.WITHDRAWN, str(exc)
            else:
                self.busy.add(move.vm)
                self.term.planned[rec.id] = Planned(move, plan_id, index)
                if plan_id is not None and index is not None:
                    self.store.set_move_status(
                        plan_id, index, MoveStatus.STARTED, fence=fence, migration_id=rec.id
                    )
                self.metrics.migrations_started.labels(move.reason.value).inc()
                log.info(
                    "event=move_submitted id=%s vm=%s source=%s target=%s reason=%s plan=%s epoch=%d",
                    rec.id,
                    move.vm,
                    move.source,
                    move.target,
                    move.reason.value,
                    plan_id,
                    self.term.epoch,
                )
                return rec
        if plan_id is not None and index is not None:
            self.store.set_move_status(plan_id, index, status, fence=fence)
        log.info(
            "event=move_not_started vm=%s plan=%s index=%s status=%s why=%r",
            move.vm,
            plan_id,
            index,
            status.value,
            why,
        )
        return None

    def submit_row(self, row: PlanRow, indices: Collection[int] | None = None) -> None:
        for mrow in row.moves:
            if indices is None or mrow.index in indices:
                self.submit(row.plan.moves[mrow.index], row.id, mrow.index)

    # ------------------------------------------------------------------ per automation level
    def act(self, plan: Plan, automation: Automation, proposal_ttl: float) -> int | None:
        """Store the plan's moves and start what ``automation`` allows; returns the proposal's id."""
        fence = self.term.lease.fence
        if automation == "auto":
            row = self.store.save_plan(plan, "auto", self.now, fence=fence, status=PlanStatus.APPROVED)
            self.store.mark_stale_plans_superseded(self.now, fence=fence, keep=row.id)
            self.submit_row(row)
            return row.id
        urgent = drain_closure(plan)
        ready = [i for i in sorted(urgent) if plan.moves[i].vm not in self.busy]
        if ready:
            moves = tuple(plan.moves[i] for i in ready)
            row = self.store.save_plan(
                replace(plan, moves=moves),
                automation,
                self.now,
                fence=fence,
                status=PlanStatus.APPROVED,
                decided_by="drain-request",
            )
            self.submit_row(row)
        rest = tuple(m for i, m in enumerate(plan.moves) if i not in urgent)
        return self._propose(replace(plan, moves=rest), automation, proposal_ttl)

    def _propose(self, proposal: Plan, automation: Automation, ttl: float) -> int | None:
        fence = self.term.lease.fence
        expires = self.now + ttl
        if not proposal.moves:
            self.store.mark_stale_plans_superseded(self.now, fence=fence, keep=-1)
            return None
        current = self.store.plans(status=PlanStatus.PROPOSED, limit=1)
        if current and signature(current[0].plan) == signature(proposal):
            self.store.refresh_proposal(current[0].id, self.now, expires, fence=fence)
            return current[0].id
        row = self.store.save_plan(proposal, automation, self.now, fence=fence, expires_at=expires)
        self.store.mark_stale_plans_superseded(self.now, fence=fence, keep=row.id)
        log.info(
            "event=plan_proposed plan=%d moves=%d bytes=%d",
            row.id,
            len(proposal.moves),
            proposal.predicted_bytes,
        )
        return row.id

    def start_approved(self) -> None:
        """Moves an operator approved (or a previous leader stored approved) and nobody started yet.

        Approved plans qualify, and approved moves of the current, unexpired proposal; anything else
        was superseded or expired before it ran. The executor re-checks each at start.
        """
        self.store.expire_proposals(self.now, fence=self.term.lease.fence)
        for row in self.store.plans_with_approved_moves():
            waiting = [
                m.index for m in row.moves if m.status == MoveStatus.APPROVED and m.migration_id is None
            ]
            if waiting:
                self.submit_row(row, waiting)


def drain_closure(plan: Plan) -> set[int]:
    """Indices of the drain moves (a ``make_room`` move serving a drain carries ``drain`` in its flags)
    and of every move a drain move waits for (its ``after``), transitively: a drain request approves
    the moves that make its room too."""
    index_of = {m.vm: i for i, m in enumerate(plan.moves)}
    out: set[int] = set()
    todo = [i for i, m in enumerate(plan.moves) if Reason.DRAIN in (m.reason, *m.flags)]
    while todo:
        i = todo.pop()
        if i in out:
            continue
        out.add(i)
        todo.extend(index_of[v] for v in plan.moves[i].after if v in index_of)
    return out


def signature(plan: Plan) -> tuple[tuple[str, str, str, str], ...]:
    return tuple((m.vm, m.source, m.target, m.reason.value) for m in plan.moves)
