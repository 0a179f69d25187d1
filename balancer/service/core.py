"""One tick of the service: collect → Snapshot → plan → Plan → act per the automation level.

``Service.tick()`` is what APScheduler calls (loop.py). It never blocks on a migration: moves go to
the executor's Runner, which runs them in its own threads across ticks; the next plan sees them as
in flight (their targets' load counts as already arrived, policy/workspace.py).

Automation levels:

* ``off``: collect and export only; nothing is planned or moved, drains stay open and say so;
* ``recommend``: plans are stored as *proposed*; a move starts only when an operator approves it
  or its plan. Drain moves are the exception: the drain request is the operator's approval;
* ``auto``: every planned move goes to the executor.

Only the leader plans and executes (ha.py); a follower collects so its API can answer reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from balancer.config import Config
from balancer.errors import StoreError
from balancer.executor.events import Outcome, OutcomeStatus
from balancer.executor.runner import Runner
from balancer.metrics.collector import Collector
from balancer.metrics.export import DrainGauge, Metrics
from balancer.model import Move, Plan, PlannerState, Snapshot
from balancer.policy import plan as make_plan
from balancer.reasons import PRIORITY, Reason
from balancer.service import wiring
from balancer.service.drains import drain_bandwidth, progress
from balancer.service.efficacy import Efficacy
from balancer.store import Store
from balancer.store.records import DrainRequest, DrainState, MoveStatus, PlanStatus

log = logging.getLogger("balancer.service")


@dataclass
class Live:
    """What the API shows between ticks; replaced, never mutated in place."""

    snapshot: Snapshot | None = None
    plan: Plan | None = None
    plan_id: int | None = None
    leader: bool = False
    last_tick: float | None = None
    last_error: str | None = None
    moves: dict[str, Move] = field(default_factory=dict)  # journal id -> move, for this process's runner
    plan_moves: dict[str, tuple[int, int]] = field(default_factory=dict)  # journal id -> (plan id, index)


class Service:
    """Ties collection, planning, the store and the executor together; one tick at a time."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        collector: Collector,
        runner: Runner,
        metrics: Metrics,
        efficacy: Efficacy | None = None,
        is_leader: Callable[[float], bool] = lambda _now: True,
        on_leadership: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.collector = collector
        self.runner = runner
        self.metrics = metrics
        self.is_leader = is_leader
        self.on_leadership = on_leadership
        self.clock = clock
        self.live = Live()
        self.efficacy = efficacy or Efficacy(metrics, cfg.service.efficacy_minutes * 60)
        self._recovered = False
        self._collections = 0
        self._blockers_logged: dict[str, tuple[tuple[str, str, str], ...]] = {}
        self._tick_lock = threading.Lock()
        self._bandwidth = drain_bandwidth(
            cfg.limits.per_source, cfg.limits.bandwidth_mib_s, cfg.limits.host_bandwidth_mib_s
        )
        metrics.state.update(automation=cfg.automation)

    # ------------------------------------------------------------------ the tick
    def tick(self) -> Plan | None:
        """Run one tick; returns the plan made (None for a follower or automation ``off``)."""
        if not self._tick_lock.acquire(blocking=False):
            log.warning("event=tick_skipped reason=previous_tick_running")
            return None
        started = time.monotonic()
        try:
            result = self._tick(self.clock())
            self.metrics.ticks.labels("ok").inc()
            self.metrics.last_success.set(self.clock())
            self.live.last_error = None
            return result
        except Exception as exc:  # one bad tick must not kill the loop; it is counted and logged
            self.metrics.ticks.labels("error").inc()
            self.live.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("event=tick_failed error=%r", self.live.last_error)
            return None
        finally:
            self.metrics.tick_duration.observe(time.monotonic() - started)
            self._tick_lock.release()

    def _tick(self, now: float) -> Plan | None:
        leader = self.is_leader(now)
        if not leader:
            self._recovered = False  # lost the lease: recover again if it comes back
        elif not self._recovered:
            # A new leader reconciles the journal (moves a dead leader left unfinished) before planning.
            self.on_leadership()
            self._recovered = True
        open_drains = {d.host: d for d in self.store.drains(state=DrainState.OPEN)}
        # A host whose (latest) drain finished stays in maintenance until an operator undrains it.
        latest: dict[str, DrainRequest] = {}
        for d in self.store.drains():  # newest first
            latest.setdefault(d.host, d)
        drained = {h for h, d in latest.items() if d.state == DrainState.DONE}
        snap = self._collect(now, set(open_drains), drained)
        self.live.leader = leader
        self.metrics.state.update(leader=leader)
        self.efficacy.check(snap, now)
        first_sample = self._collections < 2
        if first_sample:
            # CPU load is a rate between two polls: the first tick knows no VM's CPU yet (0.0 cores), and
            # a plan made on it would move VMs by a load that is not there.
            log.info("event=plan_skipped reason=first_sample detail='CPU rates need a second poll'")
        if not leader or self.cfg.automation == "off" or first_sample:
            if leader:  # only the leader writes drain progress; a follower's gauges stay empty
                self._update_drains(open_drains, snap, None, now, drained)
            self.live.last_tick = now
            return None

        # Approved moves start before planning, so the new plan counts them as in flight: planned after
        # them, it could otherwise send the same VM elsewhere in the same tick.
        self._start_approved(now)
        state = PlannerState(
            draining=frozenset(open_drains),
            in_flight=tuple(self._in_flight_moves()),
            recent=self.store.recent_moves(now - self._history_seconds()),
        )
        t0 = time.monotonic()
        plan = make_plan(snap, state, wiring.plan_args(self.cfg), now)
        self.metrics.plan_made(plan, time.monotonic() - t0)
        self.live.plan = plan
        for m in plan.moves:
            log.info(
                "event=move_planned vm=%s source=%s target=%s reason=%s bytes=%d detail=%r",
                m.vm,
                m.source,
                m.target,
                m.reason.value,
                m.cost.total_bytes,
                m.detail,
            )
        if plan.moves:
            self._act(plan, now)
        self._update_drains(open_drains, snap, plan, now, drained)
        self._export_executor_state()
        self.live.last_tick = now
        return plan

    # ------------------------------------------------------------------ steps
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
        snap = wiring.with_host_states(raw, draining, set(self.cfg.rules.exclude_hosts) | drained)
        self.live.snapshot = snap
        self.metrics.state.update(
            snapshot=snap, load=snap.load_ratios(), collection_seconds=self.collector.poll_seconds()
        )
        return snap

    def _act(self, plan: Plan, now: float) -> None:
        """Store the plan; start what the automation level allows."""
        auto = self.cfg.automation == "auto"
        if not auto:
            # The same proposal tick after tick keeps its id, so an operator can approve it.
            current = self.store.plans(status=PlanStatus.PROPOSED, limit=1)
            if current and _signature(current[0].plan) == _signature(plan):
                self.live.plan_id = current[0].id
                return
        row = self.store.save_plan(
            plan, self.cfg.automation, now, status=PlanStatus.APPROVED if auto else PlanStatus.PROPOSED
        )
        self.store.mark_stale_plans_superseded(now, keep=row.id)
        self.live.plan_id = row.id
        for mrow in row.moves:
            move = plan.moves[mrow.index]
            if auto or Reason.DRAIN in (move.reason, *move.flags):  # a make_room move a drain needs too
                if not auto:
                    self.store.approve_move(row.id, mrow.index, "drain-request", now)
                self._submit(row.id, mrow.index, move, now)

    def _start_approved(self, now: float) -> None:
        """Approved moves not started yet: an operator's approval (recommend mode), or an approved plan a
        previous leader stored and died before starting; the executor re-checks each at start."""
        rows = (*self.store.plans(status=PlanStatus.APPROVED), *self.store.plans(status=PlanStatus.PROPOSED))
        for row in rows:
            for mrow in row.moves:
                if mrow.status == MoveStatus.APPROVED and mrow.migration_id is None:
                    self._submit(row.id, mrow.index, row.plan.moves[mrow.index], now)

    def _submit(self, plan_id: int, index: int, move: Move, now: float) -> None:
        busy = {m.vm for m in self._in_flight_moves()}
        if move.vm in busy:
            # Another move of this VM is queued or running; this one was planned without it and is not
            # kept for later, when it would run on a stale picture.
            self.store.set_move_status(plan_id, index, MoveStatus.SKIPPED, migration_id=None)
            log.info("event=move_skipped vm=%s plan=%d index=%d reason=in_flight", move.vm, plan_id, index)
            return
        (rec,) = self.runner.submit([move], plan_id=plan_id)
        self.live.moves[rec.id] = move
        self.live.plan_moves[rec.id] = (plan_id, index)
        self.store.set_move_status(plan_id, index, MoveStatus.STARTED, migration_id=rec.id)
        self.metrics.migrations_started.labels(move.reason.value).inc()
        log.info(
            "event=move_submitted id=%s vm=%s source=%s target=%s reason=%s plan=%d",
            rec.id,
            move.vm,
            move.source,
            move.target,
            move.reason.value,
            plan_id,
        )

    def finished(self, outcome: Outcome) -> None:
        """An executor outcome: the stored plan's move follows it (called from a worker thread)."""
        where = self.live.plan_moves.pop(outcome.record.id, None)
        if where is None:
            return
        status = {
            OutcomeStatus.SUCCEEDED: MoveStatus.SUCCEEDED,
            OutcomeStatus.SKIPPED: MoveStatus.SKIPPED,
        }.get(outcome.status, MoveStatus.FAILED)
        try:
            self.store.set_move_status(*where, status, migration_id=outcome.record.id)
        except StoreError as exc:  # the journal has the truth; the plan view is secondary
            log.warning("event=plan_move_status_failed id=%s error=%r", outcome.record.id, str(exc))

    def _in_flight_moves(self) -> list[Move]:
        ids = [r.id for r in (*self.runner.queued(), *self.runner.in_flight())]
        return [self.live.moves[i] for i in ids if i in self.live.moves]

    def _update_drains(
        self,
        open_drains: dict[str, DrainRequest],
        snap: Snapshot,
        plan: Plan | None,
        now: float,
        drained: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        # Hosts held in maintenance by a finished drain read 0 (not absent), so graphs end at zero.
        gauges: dict[str, DrainGauge] = {h: DrainGauge(0, 0, 0.0, 0) for h in drained}
        if not open_drains:
            self.metrics.state.update(drains=gauges)
            return
        since = min(d.created_at for d in open_drains.values())
        records = self.store.records(since=since)
        for host, d in open_drains.items():
            p = progress(host, snap, plan, records, d.created_at, self._bandwidth)
            if p.vms_remaining == 0 and not p.in_flight:
                self.store.close_drain(d.id, DrainState.DONE, "balancer", now, progress=p)
                log.info("event=drain_done host=%s id=%d done=%d failed=%d", host, d.id, p.done, p.failed)
                gauges[host] = DrainGauge(vms_remaining=0, bytes_remaining=0, eta_seconds=0.0, blocked_vms=0)
                continue
            self.store.update_drain_progress(d.id, p, now)
            gauges[host] = DrainGauge(
                vms_remaining=p.vms_remaining,
                bytes_remaining=p.bytes_remaining,
                eta_seconds=p.eta_seconds,
                blocked_vms=len(p.blockers),
                deadline=d.deadline,
            )
            seen = tuple((b.vm, b.reason.value, b.detail) for b in p.blockers)
            if self._blockers_logged.get(host) != seen:  # one line when the blockers change, not every tick
                self._blockers_logged[host] = seen
                for b in p.blockers:
                    log.warning(
                        "event=drain_blocked host=%s vm=%s reason=%s detail=%r",
                        host,
                        b.vm,
                        b.reason.value,
                        b.detail,
                    )
        self.metrics.state.update(drains=gauges)

    def _export_executor_state(self) -> None:
        queued = self.runner.queued()
        depth: dict[str, int] = {r.value: 0 for r in PRIORITY}  # every priority, so a drained queue reads 0
        for rec in queued:
            depth[rec.reason.value] = depth.get(rec.reason.value, 0) + 1
        running = self.runner.in_flight()
        starts = [r.started_at or r.created_at for r in running]
        self.metrics.state.update(
            queue_depth=depth, in_flight=len(running), oldest_in_flight_started=min(starts, default=None)
        )

    def _history_seconds(self) -> float:
        p = self.cfg.policy
        return max(p.cooldown_minutes, p.quarantine_minutes) * 60.0


def _signature(plan: Plan) -> tuple[tuple[str, str, str, str], ...]:
    return tuple((m.vm, m.source, m.target, m.reason.value) for m in plan.moves)
