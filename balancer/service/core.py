"""The service: collect → Snapshot → plan → Plan → act per the automation level, as one authority.

``Service.tick()`` runs every ``collection.interval_seconds`` and ``Service.intake()`` in between (the
daemon's loop calls both, one at a time, on the monotonic clock). Neither blocks on a migration:
moves go to the executor's Runner, which runs them in its own threads; the next plan sees them as in
flight. Outcomes come back through one queue, drained at the start of each tick and intake, and what
the API shows is one ``Live`` value, replaced whole.

Only the leader acts. Each leadership term (service/leadership.py) gets a Runner of its own, whose
journal writes and host actions are fenced by the term's epoch. When a term starts, the unfinished
moves of older terms are adopted: ``queued`` ones end (``leader_changed``), the others are reconciled
to their end by the new Runner, holding their admission slots; a process never reconciles a move it
is itself running. When a term ends, its Runner detaches at once (nothing new starts; running
migrations are left to the next leader). A follower collects so its API can answer reads.

Automation levels (acting.py): ``off`` plans nothing; ``recommend`` stores proposals and starts drain
moves at once (the drain request is the approval); ``auto`` starts every planned move.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Collection
from dataclasses import replace

from balancer.api.actions import resolve_migration
from balancer.api.context import Live, NotLeader
from balancer.api.schemas import MigrationCreate, ProgressNow
from balancer.config import Config
from balancer.errors import Conflict, ErrorCode, LeaseLost, NotReady, StoreError
from balancer.executor.events import Outcome, OutcomeStatus
from balancer.executor.hypervisor import HypervisorFactory
from balancer.executor.runner import Runner, VmBusy, move_of
from balancer.metrics.collector import Collector
from balancer.metrics.export import ControlMetrics, Metrics
from balancer.model import MigrationRecord, Move, MoveCost, Plan, PlannerState, Snapshot
from balancer.policy import plan as make_plan
from balancer.reasons import PRIORITY, Reason
from balancer.service import wiring
from balancer.service.acting import Acting, Planned, Term
from balancer.service.decisions import DecisionLog
from balancer.service.drains import DrainBook
from balancer.service.efficacy import Efficacy
from balancer.service.events import ServiceSink
from balancer.service.leadership import LeaderTerm, LeaseKeeper
from balancer.store import Store
from balancer.store.records import DrainRequest, DrainState, MoveStatus, PlanStatus

log = logging.getLogger("balancer.service")
_FOLLOW = {
    OutcomeStatus.SUCCEEDED: MoveStatus.SUCCEEDED,
    OutcomeStatus.SKIPPED: MoveStatus.SKIPPED,
    OutcomeStatus.REFUSED: MoveStatus.REFUSED,
}


class Service:
    """Ties collection, planning, the store and the executor together; implements the API's
    ServiceControl."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        collector: Collector,
        metrics: Metrics,
        hypervisors: HypervisorFactory,
        keeper: LeaseKeeper,
        control: ControlMetrics,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.collector = collector
        self.metrics = metrics
        self.hypervisors = hypervisors
        self.keeper = keeper
        self.control = control
        self.efficacy = Efficacy(metrics, cfg.service.efficacy_minutes * 60)
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.sink = ServiceSink(metrics, self._outcomes.put)
        self.drains = DrainBook(store, metrics)
        self.decisions = DecisionLog()
        self._live = Live()
        self._term: Term | None = None
        self._term_lock = threading.Lock()  # the term is swapped by the loop and by the lease thread
        self._act_lock = threading.Lock()  # tick, intake and operator requests act one at a time
        self._collections = 0
        self._raw: Snapshot | None = None  # the last collection, before drains are applied
        self._stopping = False
        metrics.state.update(automation=cfg.automation)

    # ------------------------------------------------------------------ ServiceControl (the API)
    def live(self) -> Live:
        return self._live

    def progress(self, record_id: str) -> ProgressNow | None:
        return self.sink.progress(record_id)

    def abort(self, record_id: str) -> bool:
        term = self._current_term()
        return term is not None and term.runner.abort(record_id)

    def migrate(self, request: MigrationCreate, actor: str) -> MigrationRecord:
        """An operator's migration, through this leader's queue, admission and journal."""
        term = self._current_term()
        if term is None:
            lease = self.store.current_leader()
            holder = lease.holder if lease is not None else None
            raise NotLeader(
                "this instance does not lead; every migration goes through the leader"
                + (f" ({holder})" if holder else " (none elected right now: retry shortly)"),
                holder,
            )
        source = resolve_migration(self.cfg, self._live.snapshot, request)
        move = Move(
            request.vm, source, request.target, Reason.MANUAL, MoveCost(0, 0, 0, 0.0), detail=f"by {actor}"
        )
        with self._act_lock:
            busy = {r.vm: r for r in self.store.unfinished_records() if r.epoch < term.epoch}
            if request.vm in busy:
                raise Conflict(
                    f"{request.vm} has an unfinished migration {busy[request.vm].id} of an older leader "
                    "term; this leader adopts it first",
                    ErrorCode.VM_BUSY,
                )
            try:
                rec = term.runner.submit_one(
                    move,
                    bandwidth_mib_s=request.bandwidth_mib_s,
                    copy_mode="full" if request.full_copy else None,
                )
            except VmBusy as exc:
                raise Conflict(str(exc), ErrorCode.VM_BUSY) from None
            term.planned[rec.id] = Planned(move)
        self.metrics.migrations_started.labels(Reason.MANUAL.value).inc()
        self._publish(in_flight=tuple(r for r, _ in term.runner.active()))
        return rec

    def preview(self, drains: Collection[str]) -> Plan:
        """The planner on this instance's view, with ``drains`` added; nothing stored or started."""
        snap = self._live.snapshot
        if snap is None:
            raise NotReady("no collection has completed yet; retry after the first tick")
        now = self.store.now()
        open_drains = {d.host for d in self.store.drains(state=DrainState.OPEN)}
        draining = frozenset(open_drains | set(drains))
        snap = wiring.with_host_states(snap, set(draining), set())
        state = PlannerState(draining=draining, in_flight=self._in_flight_moves(), recent=self._recent(now))
        return make_plan(snap, state, wiring.plan_args(self.cfg), now)

    # ------------------------------------------------------------------ the loop
    def tick(self) -> Plan | None:
        """Run one tick; returns the plan made (None for a follower, automation ``off``, or an error)."""
        started = time.monotonic()
        try:
            result = self._tick()
            self.metrics.ticks.labels("ok").inc()
            self.metrics.last_success.set(self.store.now())
            return result
        except Exception as exc:  # one bad tick must not kill the loop; it is counted and logged
            self.metrics.ticks.labels("error").inc()
            error = f"{type(exc).__name__}: {exc}"
            self._publish(last_error=error)
            log.exception("event=tick_failed error=%r", error)
            return None
        finally:
            self.metrics.tick_duration.observe(time.monotonic() - started)

    def intake(self) -> None:
        """Between ticks, on the leader: outcomes, operators' approvals, moves an undrain withdrew."""
        term = self._current_term()
        if term is None:
            return
        try:
            with self._act_lock:
                self._consume_outcomes(term)
                unfinished = self.store.unfinished_records()
                term.runner.forget_withdrawn(r.id for r in unfinished)
                open_drains, drained = self._drain_view()
                self._acting(term, self.store.now(), unfinished, open_drains).start_approved()
                snap = self._host_states(set(open_drains), drained)
            self._publish(
                in_flight=tuple(r for r, _ in term.runner.active()), snapshot=snap or self._live.snapshot
            )
        except (LeaseLost, StoreError) as exc:
            log.warning("event=intake_failed error=%r", str(exc))

    def _tick(self) -> Plan | None:
        now = self.store.now()
        term = self._current_term()
        with self._act_lock:
            if term is not None:
                self._consume_outcomes(term)
            open_drains, drained = self._drain_view()
            snap = self._collect(now, set(open_drains), drained)
            self._publish(snapshot=snap)  # the executor's pre-checks read the snapshot the plan is made on
            self.efficacy.check(snap, now)
            recent = self._recent(now)
            leader = term is not None
            self.metrics.state.update(leader=leader)
            first_sample = self._collections < 2
            if first_sample:
                # CPU load is a rate between two polls: the first tick knows no VM's CPU yet (0.0 cores),
                # and a plan made on it would move VMs by a load that is not there.
                log.info("event=plan_skipped reason=first_sample detail='CPU rates need a second poll'")
            plan: Plan | None = None
            plan_id = self._live.plan_id
            if term is not None:
                unfinished = self.store.unfinished_records()
                term.runner.forget_withdrawn(r.id for r in unfinished)
                if self.cfg.automation != "off" and not first_sample:
                    acting = self._acting(term, now, unfinished, open_drains)
                    acting.start_approved()  # before planning, so the plan counts them as in flight
                    state = PlannerState(
                        draining=frozenset(open_drains),
                        in_flight=self._in_flight_moves(),
                        recent=recent,
                        standing=self._standing_proposal(),
                    )
                    t0 = time.monotonic()
                    plan = make_plan(snap, state, wiring.plan_args(self.cfg), now)
                    self.metrics.plan_made(plan, time.monotonic() - t0)
                    self.decisions.record(plan)
                    plan_id = (
                        acting.act(plan, self.cfg.automation, self._proposal_ttl()) if plan.moves else None
                    )
                self.drains.update(
                    open_drains, drained, snap, plan, now, term.lease.fence, wiring.drain_bandwidth(self.cfg)
                )
                self._export_executor_state(term.runner)
                self.sink.retain({r.id for r, _ in term.runner.active()})
        in_flight = tuple(r for r, _ in term.runner.active()) if term is not None else ()
        self._publish(
            snapshot=snap,
            plan=plan if plan is not None else self._live.plan,
            plan_id=plan_id,
            leader=leader,
            epoch=term.epoch if term is not None else None,
            last_tick=now,
            last_tick_monotonic=time.monotonic(),
            last_error=None,
            in_flight=in_flight,
            recent=recent,
        )
        self.control.ticked(time.monotonic())
        return plan

    def _standing_proposal(self) -> tuple[Move, ...]:
        """The moves of the proposal operators are reviewing (recommend mode): the planner keeps them
        while they are as good as a fresh plan, so noise does not replace it tick after tick."""
        if self.cfg.automation != "recommend":
            return ()
        current = self.store.plans(status=PlanStatus.PROPOSED, limit=1)
        return current[0].plan.moves if current else ()

    # ------------------------------------------------------------------ leadership
    def current_runner(self) -> Runner | None:
        """The Runner of the term started last (None while none runs); starts nothing."""
        term = self._term
        return term.runner if term is not None else None

    def leadership_changed(self, term: LeaderTerm | None) -> None:
        """The lease thread's news. A lost term detaches its Runner at once (no waiting for a tick)."""
        self.control.leader_changes.labels("acquired" if term is not None else "lost").inc()
        self.control.term(term.epoch if term is not None else None)
        if term is None:
            self._end_term("the lease was lost")

    def _current_term(self) -> Term | None:
        """The Term of the lease this process holds now, started (and older moves adopted) if new."""
        lease = self.keeper.term()
        with self._term_lock:
            current = self._term
            if current is not None and (lease is None or lease.epoch != current.epoch):
                self._term = None
                current.runner.detach(f"leadership term {current.epoch} ended")
                current = None
            if lease is None or self._stopping:
                return None
            if current is None:
                current = self._term = Term(lease, self._runner(lease))
                fresh = True
            else:
                fresh = False
        if fresh:
            self._adopt(current)
        return current

    def _end_term(self, why: str) -> None:
        with self._term_lock:
            current, self._term = self._term, None
        if current is not None:
            left = current.runner.detach(why)
            log.warning("event=term_ended epoch=%d why=%r left=%d", current.epoch, why, len(left))
            self._publish(leader=False, epoch=None, in_flight=())

    def _runner(self, lease: LeaderTerm) -> Runner:
        return Runner(
            self.cfg.executor,
            self.cfg.limits,
            self.hypervisors,
            self.store.journal(lease.fence),
            wiring.executor_endpoints(self.cfg),
            self.sink,
            snapshot=lambda: self._live.snapshot,
            rule_check=wiring.rule_check(self.cfg),
            term=lease,
        )

    def _adopt(self, term: Term) -> None:
        """Take over the unfinished moves of older terms (never this term's own)."""
        try:
            # needs_attention records are looked at again at every term's start: the hosts may now
            # settle what a human was asked to decide
            left = (*self.store.unfinished_records(), *self.store.records_needing_attention())
            orphans = [r for r in left if r.epoch < term.epoch]
            owned = term.runner.adopt(orphans)
        except (LeaseLost, StoreError) as exc:
            log.warning("event=adoption_failed epoch=%d error=%r", term.epoch, str(exc))
            return
        threading.Thread(target=self._sweep, args=(term,), name="sweep", daemon=True).start()
        for rec in orphans:
            self.control.adopted.labels(rec.state.value).inc()
        for rec in owned:
            term.planned[rec.id] = Planned(move_of(rec))
        log.info(
            "event=term_started epoch=%d adopted=%d ended_queued=%d",
            term.epoch,
            len(owned),
            len(orphans) - len(owned),
        )

    def _sweep(self, term: Term) -> None:
        """What finished moves left on targets (an interrupted copy, an orphan overlay) is removed once
        per term, on the term's fenced hypervisors."""
        try:
            for line in term.runner.sweep():
                log.info("event=leftovers_removed epoch=%d detail=%r", term.epoch, line)
        except (LeaseLost, StoreError) as exc:
            log.warning("event=sweep_failed epoch=%d error=%r", term.epoch, str(exc))

    # ------------------------------------------------------------------ steps
    def _acting(
        self,
        term: Term,
        now: float,
        unfinished: Collection[MigrationRecord],
        open_drains: dict[str, DrainRequest] | None = None,
    ) -> Acting:
        if open_drains is None:
            open_drains, _ = self._drain_view()
        busy = {r.vm for r in unfinished}
        return Acting(self.store, term, self.metrics, now, {h: d.id for h, d in open_drains.items()}, busy)

    def _drain_view(self) -> tuple[dict[str, DrainRequest], set[str]]:
        """Open drains by host, and hosts a finished drain keeps in maintenance until an undrain."""
        latest: dict[str, DrainRequest] = {}
        for d in self.store.drains():  # newest first
            latest.setdefault(d.host, d)
        open_drains = {h: d for h, d in latest.items() if d.state == DrainState.OPEN}
        drained = {h for h, d in latest.items() if d.state == DrainState.DONE}
        return open_drains, drained

    def _collect(self, now: float, draining: set[str], drained: set[str]) -> Snapshot:
        raw = self.collector.tick(now)
        self._collections += 1
        for sample in self.collector.last_samples:
            if not sample.ok and sample.error is not None:
                self.metrics.collection_errors.labels(sample.name, sample.error.kind).inc()
                log.warning(
                    "event=collection_failed host=%s kind=%s error=%r",
                    sample.name,
                    sample.error.kind,
                    str(sample.error),
                )
        self._raw = raw
        snap = wiring.with_host_states(raw, draining, set(self.cfg.rules.exclude_hosts) | drained)
        self.metrics.state.update(
            snapshot=snap, load=snap.load_ratios(), collection_seconds=self.collector.poll_seconds()
        )
        return snap

    def _host_states(self, draining: set[str], drained: set[str]) -> Snapshot | None:
        """The last collection with the store's drains applied now (an undrain or a new drain shows
        within an intake, not a tick: the executor's pre-checks read it)."""
        if self._raw is None:
            return None
        return wiring.with_host_states(self._raw, draining, set(self.cfg.rules.exclude_hosts) | drained)

    def _consume_outcomes(self, term: Term) -> None:
        """Outcomes of the executor, in the order they ended: stored plan moves follow them."""
        while True:
            try:
                out = self._outcomes.get_nowait()
            except queue.Empty:
                return
            planned = term.planned.pop(out.record.id, None)
            try:
                self.store.follow_outcome(
                    out.record.id, _FOLLOW.get(out.status, MoveStatus.FAILED), fence=term.lease.fence
                )
            except LeaseLost:
                return  # the next leader sees the journal; the plan view is secondary
            if out.ok and planned is not None:
                self.efficacy.moved(planned.move, self.store.now())

    def _in_flight_moves(self) -> tuple[Move, ...]:
        term = self._term
        if term is not None:
            return tuple(move for _, move in term.runner.active())
        return tuple(move_of(r) for r in self.store.unfinished_records())

    def _recent(self, now: float) -> tuple:  # type: ignore[type-arg]
        p = self.cfg.policy
        return self.store.recent_moves(now - max(p.cooldown_minutes, p.quarantine_minutes) * 60.0)

    def _proposal_ttl(self) -> float:
        return self.cfg.service.proposal_ttl_seconds or 3 * self.cfg.collection.interval_seconds

    def _export_executor_state(self, runner: Runner) -> None:
        queued = runner.queued()
        depth: dict[str, int] = {r.value: 0 for r in PRIORITY}  # every priority, so a drained queue reads 0
        for rec in queued:
            depth[rec.reason.value] = depth.get(rec.reason.value, 0) + 1
        running = runner.in_flight()
        starts = [r.started_at or r.created_at for r in running]
        self.metrics.state.update(
            queue_depth=depth, in_flight=len(running), oldest_in_flight_started=min(starts, default=None)
        )

    def _publish(self, **changes: object) -> None:
        self._live = replace(self._live, **changes)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ config and shutdown
    def reconfigure(self, cfg: Config) -> None:
        """Apply a reloaded config from the next tick on (the daemon validated it and checked what a
        reload cannot change). A running term keeps its Runner's limits until the next term."""
        with self._act_lock:
            self.cfg = cfg
            self.metrics.state.update(automation=cfg.automation)
            self.efficacy.delay = cfg.service.efficacy_minutes * 60

    def shutdown(self, grace_seconds: float, abort: bool = False) -> list[MigrationRecord]:
        """Stop acting: queued moves end ``shutdown``, running ones get ``grace_seconds`` to finish and
        are then left to the next leader (or recovery at the next start)."""
        self._stopping = True
        with self._term_lock:
            term = self._term
        if term is None:
            return []
        return term.runner.shutdown(grace_seconds, abort=abort)
