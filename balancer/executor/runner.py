"""Run moves: a queue, admission under limits, one worker thread per admitted move, outcomes.

``Runner.submit_one(move)`` journals a move as ``queued`` and returns its record; a dispatcher thread
admits moves (``admission.admit``) whenever one is submitted or one finishes, and each admitted move
runs ``MoveRun`` in its own thread (at most the global limit at once: a thread pool sized by
admission). ``adopt(records)`` takes over the unfinished moves of an older leader term: each holds its
slots like a running move while ``recovery.reconcile`` watches it to its end.

One Runner serves one leadership term (``term``): its journal writes are fenced by the term's epoch
and its hypervisors refuse every action once the term is no longer valid (fence.py). When the term
ends, ``detach()`` drops the queue without writing anything (the store would refuse it) and leaves the
running migrations to the next leader, which adopts them from the journal; the worker threads stop
at their next action. ``shutdown`` (SIGTERM) instead marks queued moves ``aborted`` (``shutdown``),
waits up to the grace period and leaves running migrations to recovery: they are never aborted just
because the service stops (with PEER2PEER the source libvirtd carries on).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from balancer.errors import LeaseLost, RecordChanged
from balancer.executor import admission
from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import (
    EventSink,
    Finished,
    Note,
    Outcome,
    OutcomeStatus,
    Waiting,
    discard,
)
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.fence import Term, fenced
from balancer.executor.hypervisor import HypervisorFactory
from balancer.executor.journal import Journal, JournalStore, new_record
from balancer.executor.migrate import Control, MoveEnv, MoveRun
from balancer.executor.prechecks import CheckContext, RuleCheck
from balancer.executor.recovery import reconcile
from balancer.model import CopyMode, MigrationRecord, Move, MoveCost, MoveState, Snapshot
from balancer.reasons import Reason


class VmBusy(Exception):
    """The VM already has a move queued, running or being adopted by this runner."""


@dataclass
class _Item:
    record: MigrationRecord
    move: Move
    seq: int
    after: frozenset[str] = frozenset()  # ids of the moves that must first take a VM off its target
    control: Control = field(default_factory=Control)
    thread: threading.Thread | None = None
    run: MoveRun | None = None
    kind: Literal["move", "adopted"] = "move"
    copy_mode: CopyMode | None = None  # an operator's --full-copy


class Runner:
    """Executes moves under ``LimitArgs``; thread-safe; events go to ``sink`` (from worker threads)."""

    def __init__(
        self,
        executor: ExecutorArgs,
        limits: LimitArgs,
        hypervisors: HypervisorFactory,
        store: JournalStore,
        endpoints: Mapping[str, MigrationEndpoint],
        sink: EventSink = discard,
        snapshot: Callable[[], Snapshot | None] | None = None,
        rule_check: RuleCheck | None = None,
        term: Term | None = None,
    ) -> None:
        self.args = executor
        self.limits = limits
        self.term = term
        self.hypervisors = fenced(hypervisors, term) if term is not None else hypervisors
        self.endpoints = dict(endpoints)
        self.sink = sink
        self.journal = Journal(store, sink)
        self._snapshot = snapshot
        self._rule_check = rule_check
        self._cv = threading.Condition()
        self._queue: list[_Item] = []
        self._running: dict[str, _Item] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._waits: dict[str, Reason] = {}
        self._seq = 0
        self._reserved: set[str] = set()  # VMs whose move is being journaled right now
        self._closing = False
        self.detached = False
        self._dispatcher = threading.Thread(target=self._dispatch, name="executor-dispatch", daemon=True)
        self._dispatcher.start()

    # -- public API -------------------------------------------------------------------
    def submit(
        self, moves: Iterable[Move], plan_id: int | None = None, bandwidth_mib_s: int | None = None
    ) -> list[MigrationRecord]:
        """Queue moves (in plan order); returns their ``queued`` journal records."""
        return [self.submit_one(m, plan_id=plan_id, bandwidth_mib_s=bandwidth_mib_s) for m in moves]

    def submit_one(
        self,
        move: Move,
        *,
        plan_id: int | None = None,
        bandwidth_mib_s: int | None = None,
        drain_id: int | None = None,
        copy_mode: CopyMode | None = None,
    ) -> MigrationRecord:
        """Journal ``move`` as queued (only while drain ``drain_id`` is open, if given) and queue it.

        Raises VmBusy when the VM already has a move here, Conflict when the drain was closed, and
        LeaseLost when this runner's term has ended (nothing is queued then).
        """
        bw = admission.effective_bandwidth(bandwidth_mib_s or 0, self.limits)
        with self._cv:
            if self.detached:
                raise LeaseLost("this runner's leadership term has ended; not accepting moves")
            if self._closing:
                raise RuntimeError("runner is shutting down; not accepting moves")
            busy = self._item_of_vm(move.vm)
            if busy is not None:
                raise VmBusy(f"{move.vm} already has migration {busy.record.id} ({busy.record.state.value})")
            if move.vm in self._reserved:
                raise VmBusy(f"{move.vm} is being queued by another request right now")
            self._reserved.add(move.vm)  # the store write below runs without the lock held
        try:
            rec = new_record(move, self.journal.clock(), bw, plan_id)
            if drain_id is not None:
                rec = replace(rec, drain_id=drain_id)
            rec = self.journal.create(rec, drain_open=drain_id)
            with self._cv:
                if self.detached:  # the term lapsed while we wrote: the next leader ends the record
                    raise LeaseLost(f"leadership term ended while {move.vm}'s move was being queued")
                after = admission.room_from(move, (*self._queue, *self._running.values()))
                self._queue.append(_Item(rec, move, self._seq, after, copy_mode=copy_mode))
                self._seq += 1
                self._cv.notify_all()
        finally:
            with self._cv:
                self._reserved.discard(move.vm)
        return rec

    def adopt(self, records: Iterable[MigrationRecord]) -> list[MigrationRecord]:
        """Take over an older term's unfinished records (oldest first); returns what this term now owns.

        A record still ``queued`` was never started: it ends ``aborted`` (``leader_changed``) and the
        planner may plan its VM again. Any other is made this term's and reconciled in a worker
        thread that holds its admission slots until the migration's end is known.
        """
        owned: list[MigrationRecord] = []
        for rec in sorted(records, key=lambda r: r.created_at):
            if self.term is not None and rec.epoch >= self.term.epoch:
                continue  # ours already
            try:
                mine = self.journal.adopt(rec)
            except RecordChanged:
                continue  # it moved on meanwhile (finished, or adopted by someone else)
            if mine.state == MoveState.QUEUED:
                self.journal.finish(
                    mine,
                    MoveState.ABORTED,
                    Reason.LEADER_CHANGED,
                    None,
                    f"queued under leader term {rec.epoch}, never started; the new leader re-plans",
                    recovering=True,
                )
                continue
            item = _Item(mine, move_of(mine), -1, kind="adopted")
            with self._cv:
                self._running[mine.id] = item
                item.thread = threading.Thread(
                    target=self._work, args=(item,), name=f"adopt-{mine.vm}", daemon=True
                )
                item.thread.start()
            owned.append(mine)
        return owned

    def in_flight(self) -> list[MigrationRecord]:
        """Records of the moves running now (admitted or adopted, not finished)."""
        with self._cv:
            return [i.run.rec if i.run is not None else i.record for i in self._running.values()]

    def queued(self) -> list[MigrationRecord]:
        with self._cv:
            return [i.record for i in admission_order(self._queue)]

    def active(self) -> list[tuple[MigrationRecord, Move]]:
        """Every move this runner holds (queued, running, adopted), with its Move: the planner's
        ``in_flight`` and the VMs no new move may touch."""
        with self._cv:
            items = [*admission_order(self._queue), *self._running.values()]
            return [(i.run.rec if i.run is not None else i.record, i.move) for i in items]

    def outcome(self, record_id: str) -> Outcome | None:
        with self._cv:
            return self._outcomes.get(record_id)

    def abort(self, record_id: str, reason: Reason = Reason.ABORTED_BY_OPERATOR) -> bool:
        """Abort a queued move (journaled ``aborted``) or ask a running one to abort its job."""
        with self._cv:
            for item in self._queue:
                if item.record.id == record_id:
                    self._queue.remove(item)
                    self._finish_unstarted(item, reason, "aborted while queued")
                    self._cv.notify_all()
                    return True
            item_run = self._running.get(record_id)
        if item_run is None:
            return False
        item_run.control.request_abort(reason)
        return True

    def forget_withdrawn(self, unfinished: Iterable[str]) -> list[str]:
        """Drop queued moves whose records the store no longer holds unfinished (an undrain withdrew
        them); returns their ids. Each gets its Finished event with the record as stored."""
        alive = set(unfinished)
        with self._cv:
            gone = [i for i in self._queue if i.record.id not in alive]
            for item in gone:
                self._queue.remove(item)
            self._cv.notify_all()
        for item in gone:
            self._withdrawn(item)
        return [i.record.id for i in gone]

    def wait(self, record_ids: Iterable[str] | None = None, timeout: float | None = None) -> list[Outcome]:
        """Block until the given moves (default: all submitted) have outcomes, or the timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            ids = list(record_ids) if record_ids is not None else None
            while True:
                want = (
                    ids if ids is not None else [i.record.id for i in (*self._queue, *self._running.values())]
                )
                if all(i in self._outcomes for i in want):
                    return [self._outcomes[i] for i in (ids if ids is not None else self._outcomes)]
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return [self._outcomes[i] for i in want if i in self._outcomes]
                self._cv.wait(left if left is not None else 1.0)

    def reconfigure(
        self,
        executor: ExecutorArgs,
        limits: LimitArgs,
        hypervisors: HypervisorFactory,
        endpoints: Mapping[str, MigrationEndpoint],
    ) -> None:
        """A reloaded config: moves admitted from now on use these (running ones keep theirs)."""
        with self._cv:
            self.args, self.limits = executor, limits
            self.hypervisors = fenced(hypervisors, self.term) if self.term is not None else hypervisors
            self.endpoints = dict(endpoints)
            self._cv.notify_all()

    def detach(self, why: str) -> list[MigrationRecord]:
        """The term ended: admit nothing more, drop the queue unwritten, leave running moves to the next
        leader; returns the records left behind (queued and running)."""
        with self._cv:
            if self.detached:
                return []
            self.detached = True
            self._closing = True
            left = [i.record for i in self._queue] + [
                i.run.rec if i.run is not None else i.record for i in self._running.values()
            ]
            self._queue = []
            self._cv.notify_all()
        for rec in left:
            self.sink(Note(rec.id, rec.vm, None, f"left to the next leader: {why}"))
        return left

    def shutdown(self, grace_seconds: float, abort: bool = False) -> list[MigrationRecord]:
        """Stop admitting; queued moves end ``aborted`` (shutdown); wait up to ``grace_seconds``.

        With ``abort`` the running jobs are asked to abort first. Returns the records still running
        at the end: they are left to the source libvirtd and reconciled by recovery at next start.
        """
        with self._cv:
            self._closing = True
            queued, self._queue = self._queue, []
            running = list(self._running.values())
            self._cv.notify_all()
        for item in queued:
            with contextlib.suppress(LeaseLost, RecordChanged):  # a newer leader deals with it then
                self._finish_unstarted(item, Reason.SHUTDOWN, "service stopping before the move started")
        if abort:
            for item in running:
                item.control.request_abort(Reason.SHUTDOWN)
        deadline = time.monotonic() + grace_seconds
        for item in running:
            if item.thread is not None:
                item.thread.join(max(0.0, deadline - time.monotonic()))
        return self.in_flight()

    # -- internals ------------------------------------------------------------------------
    def _item_of_vm(self, vm: str) -> _Item | None:
        return next((i for i in (*self._queue, *self._running.values()) if i.move.vm == vm), None)

    def _finish_unstarted(self, item: _Item, reason: Reason, detail: str) -> None:
        rec = self.journal.finish(item.record, MoveState.ABORTED, reason, None, detail)
        self._record_outcome(Outcome(OutcomeStatus.ABORTED, reason, rec, None, detail))

    def _withdrawn(self, item: _Item) -> None:
        """The store ended a move before it started (an undrain): report it as the store has it."""
        try:
            rec = self.journal.store.get_record(item.record.id)
        except Exception:  # the record is gone or the store is down: report what we know
            rec = item.record
        reason = rec.outcome or Reason.DRAIN_CANCELLED
        self._record_outcome(Outcome(OutcomeStatus.ABORTED, reason, rec, None, rec.detail))

    def _record_outcome(self, out: Outcome) -> None:
        with self._cv:
            self._outcomes[out.record.id] = out
            self._cv.notify_all()
        self.sink(Finished(out))

    def _dispatch(self) -> None:
        while True:
            with self._cv:
                if self._closing:
                    return
                if self.term is not None and not self.term.valid():
                    break  # never admit once the term lapsed, even before the service notices
                self._admit_locked()
                self._cv.wait(0.5 if self.term is not None else 1.0)
        assert self.term is not None
        self.detach(f"leadership term {self.term.epoch} lapsed")

    def _admit_locked(self) -> None:
        if not self._queue:
            return
        pending, running = admission.inputs(self._queue, self._running.values())
        by_id = {i.record.id: i for i in self._queue}
        for d in admission.admit(pending, running, self.limits, len(self.endpoints)):
            item = by_id[d.id]
            if isinstance(d, admission.Wait):
                if self._waits.get(d.id) != d.reason:
                    self._waits[d.id] = d.reason
                    self.sink(Waiting(d.id, item.move.vm, d.reason, d.detail))
                continue
            self._waits.pop(d.id, None)
            self._queue.remove(item)
            self._running[d.id] = item
            item.thread = threading.Thread(
                target=self._work, args=(item,), name=f"move-{item.move.vm}", daemon=True
            )
            item.thread.start()

    def _env(self, item: _Item) -> MoveEnv:
        snap = self._snapshot() if self._snapshot is not None else None
        incoming = 0
        if snap is not None:
            with self._cv:
                others = [
                    i.move.vm
                    for i in self._running.values()
                    if i.move.target == item.move.target and i is not item
                ]
            for name in others:
                with contextlib.suppress(KeyError):
                    incoming += snap.vm(name).memory_bytes
        args = self.args if item.copy_mode is None else self.args.model_copy(update={"copy_mode": "full"})
        check = CheckContext(args, tuple(self.endpoints), snap, self._rule_check, incoming)
        return MoveEnv(args, self.hypervisors, self.endpoints, self.journal, self.sink, check)

    def _work(self, item: _Item) -> None:
        outcome: Outcome | None = None
        withdrawn = False
        try:
            if item.kind == "adopted":
                outcome = self._reconcile(item)
            else:
                item.run = MoveRun(item.record, item.move, self._env(item), item.control)
                outcome = item.run.run()
        except LeaseLost as exc:
            self.sink(Note(item.record.id, item.move.vm, None, f"stopped acting: {exc}"))
        except RecordChanged as exc:
            current = exc.current
            if isinstance(current, MigrationRecord) and current.state.final:
                withdrawn = True  # ended by the store (an undrain) before this thread got to it
            else:
                self.sink(Note(item.record.id, item.move.vm, None, f"stopped acting: {exc}"))
        finally:
            with self._cv:
                self._running.pop(item.record.id, None)
                if outcome is not None:
                    item.record = outcome.record
                    self._outcomes[item.record.id] = outcome
                self._cv.notify_all()
            if outcome is not None:
                self.sink(Finished(outcome))
            elif withdrawn:
                self._withdrawn(item)

    def _reconcile(self, item: _Item) -> Outcome:
        final = reconcile(item.record, self.journal, self.hypervisors, self.args)
        return outcome_of(final)


def outcome_of(rec: MigrationRecord) -> Outcome:
    """The Outcome a final record stands for."""
    status = {
        MoveState.SUCCEEDED: OutcomeStatus.SUCCEEDED,
        MoveState.FAILED: OutcomeStatus.FAILED,
        MoveState.ABORTED: OutcomeStatus.ABORTED,
    }.get(rec.state, OutcomeStatus.NEEDS_ATTENTION)
    reason = rec.outcome or (Reason.SUCCEEDED if rec.state == MoveState.SUCCEEDED else Reason.RECOVERED)
    return Outcome(status, reason, rec, None, rec.detail)


def move_of(rec: MigrationRecord) -> Move:
    """The Move a journal record stands for (the planner's ``in_flight`` view of an adopted record)."""
    cost = MoveCost(rec.predicted_bytes, 0, 0, 0.0, rec.copy_mode or "incremental")
    return Move(rec.vm, rec.source, rec.target, rec.reason, cost, detail=rec.detail)


def admission_order(items: Iterable[_Item]) -> list[_Item]:
    return sorted(items, key=lambda i: (i.record.priority, i.seq))
