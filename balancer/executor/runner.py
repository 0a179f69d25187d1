"""Run moves: a queue, admission under limits, one worker thread per admitted move, outcomes.

``Runner.submit(moves)`` journals each move as ``queued`` and returns the records; a dispatcher
thread admits moves (``admission.admit``) whenever one is submitted or one finishes, and each
admitted move runs ``MoveRun`` in its own thread (at most the global limit at once: a thread pool
sized by admission). ``shutdown`` stops admitting, marks queued moves ``aborted`` (reason
``shutdown``), waits up to the grace period and then leaves running migrations to recovery: they are
never aborted just because the service stops (with PEER2PEER the source libvirtd carries on).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from balancer.executor import admission
from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.artifacts import BackingRegistry, registry_for
from balancer.executor.events import EventSink, Finished, Outcome, OutcomeStatus, Waiting, discard
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.hypervisor import HypervisorFactory
from balancer.executor.journal import Journal, JournalStore, new_record
from balancer.executor.migrate import Control, MoveEnv, MoveRun
from balancer.executor.prechecks import CheckContext, RuleCheck
from balancer.model import MigrationRecord, Move, MoveState, Snapshot
from balancer.reasons import Reason


@dataclass
class _Item:
    record: MigrationRecord
    move: Move
    seq: int
    after: frozenset[str] = frozenset()  # ids of the moves that must first take a VM off its target
    control: Control = field(default_factory=Control)
    thread: threading.Thread | None = None
    run: MoveRun | None = None


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
        registry: BackingRegistry | None = None,
    ) -> None:
        self.args = executor
        self.limits = limits
        self.hypervisors = hypervisors
        self.endpoints = dict(endpoints)
        self.sink = sink
        self.journal = Journal(store, sink)
        # what moves create on targets; pass the same one to recovery (default: the store's ledger)
        self.registry = registry if registry is not None else registry_for(store)
        self._snapshot = snapshot
        self._rule_check = rule_check
        self._cv = threading.Condition()
        self._queue: list[_Item] = []
        self._running: dict[str, _Item] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._waits: dict[str, Reason] = {}
        self._seq = 0
        self._closing = False
        self._dispatcher = threading.Thread(target=self._dispatch, name="executor-dispatch", daemon=True)
        self._dispatcher.start()

    # -- public API -------------------------------------------------------------------
    def submit(
        self, moves: Iterable[Move], plan_id: int | None = None, bandwidth_mib_s: int | None = None
    ) -> list[MigrationRecord]:
        """Queue moves (in plan order); returns their ``queued`` journal records."""
        out = []
        bw = admission.effective_bandwidth(bandwidth_mib_s or 0, self.limits)
        with self._cv:
            if self._closing:
                raise RuntimeError("runner is shutting down; not accepting moves")
            for move in moves:
                rec = self.journal.create(new_record(move, time.time(), bw, plan_id))
                after = admission.room_from(move, (*self._queue, *self._running.values()))
                self._queue.append(_Item(rec, move, self._seq, after))
                self._seq += 1
                out.append(rec)
            self._cv.notify_all()
        return out

    def in_flight(self) -> list[MigrationRecord]:
        """Records of the moves running now (admitted, not finished)."""
        with self._cv:
            return [i.run.rec if i.run is not None else i.record for i in self._running.values()]

    def queued(self) -> list[MigrationRecord]:
        with self._cv:
            return [i.record for i in admission_order(self._queue)]

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

    def shutdown(self, grace_seconds: float, abort: bool = False) -> list[MigrationRecord]:
        """Stop admitting; queued moves end ``aborted`` (shutdown); wait up to ``grace_seconds``.

        With ``abort`` the running jobs are asked to abort first. Returns the records still running
        at the end: they are left to the source libvirtd and reconciled by recovery at next start.
        """
        with self._cv:
            self._closing = True
            queued, self._queue = self._queue, []
            for item in queued:
                self._finish_unstarted(item, Reason.SHUTDOWN, "service stopping before the move started")
            running = list(self._running.values())
            self._cv.notify_all()
        if abort:
            for item in running:
                item.control.request_abort(Reason.SHUTDOWN)
        deadline = time.monotonic() + grace_seconds
        for item in running:
            if item.thread is not None:
                item.thread.join(max(0.0, deadline - time.monotonic()))
        return self.in_flight()

    # -- internals ------------------------------------------------------------------------
    def _finish_unstarted(self, item: _Item, reason: Reason, detail: str) -> None:
        rec = self.journal.finish(item.record, MoveState.ABORTED, reason, None, detail)
        out = Outcome(OutcomeStatus.ABORTED, reason, rec, None, detail)
        self._outcomes[rec.id] = out
        self.sink(Finished(out))

    def _dispatch(self) -> None:
        with self._cv:
            while not self._closing:
                self._admit_locked()
                self._cv.wait(1.0)

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
        check = CheckContext(self.args, tuple(self.endpoints), snap, self._rule_check, incoming)
        return MoveEnv(
            self.args, self.hypervisors, self.endpoints, self.journal, self.sink, check, self.registry
        )

    def _work(self, item: _Item) -> None:
        outcome: Outcome | None = None
        try:
            item.run = MoveRun(item.record, item.move, self._env(item), item.control)
            outcome = item.run.run()
        finally:
            with self._cv:
                self._running.pop(item.record.id, None)
                if outcome is not None:
                    item.record = outcome.record
                    self._outcomes[item.record.id] = outcome
                self._cv.notify_all()
            if outcome is not None:
                self.sink(Finished(outcome))


def admission_order(items: Iterable[_Item]) -> list[_Item]:
    return sorted(items, key=lambda i: (i.record.priority, i.seq))
