"""One move end to end: pre-checks, target storage, the migrate call under a cap, verify, cleanup.

``MoveRun(record, move, env, control).run() -> Outcome``. The journal is written before each step
(``prechecking``, ``copying_backing``, ``migrating``, ``verifying``) and at the end; every volume
is listed in the journal and the ledger before it is created, and the bytes copied are journaled
as they grow, so recovery finds both if this process dies. The pre-check phase first removes
leftovers of earlier moves on the target (``cleanup.sweep_leftovers``); a pre-check that refuses
the move ends it ``refused`` (nothing tried: no quarantine). The migrate call and its watch live in
``watch.py``; how the move ended is decided by ``ending.classify`` from fresh looks at both hosts,
never from the migrate call alone, and what it made is then removed, kept or handed over to the VM
as the ending says (``cleanup``). Nothing here powers off, destroys or undefines a domain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from balancer.errors import LibvirtErrorInfo, MigrationError
from balancer.executor import backing, convergence
from balancer.executor.args import ExecutorArgs
from balancer.executor.artifacts import BackingRegistry
from balancer.executor.cleanup import Cleanup, remove_move_volumes, remove_source_disks, sweep_leftovers
from balancer.executor.ending import EndFacts, Ending, TargetFate, classify
from balancer.executor.events import EventSink, Note, Outcome, OutcomeStatus, Progress
from balancer.executor.facts import DomainFacts, MigrationEndpoint, MigrationRequest
from balancer.executor.hypervisor import Hypervisor
from balancer.executor.journal import Journal
from balancer.executor.prechecks import CheckContext, CheckResult, run_prechecks
from balancer.executor.verify import settle
from balancer.executor.watch import CallResult, WatchContext, watch_migration
from balancer.model import MigrationRecord, Move, MoveState
from balancer.reasons import Reason

S = MoveState
FIGURES_EVERY_S = 2.0  # how often bytes copied are journaled while they grow (one small write)


@dataclass
class Control:
    """Asks a running move to stop; the poll loop aborts the libvirt job at its next tick."""

    abort: threading.Event = field(default_factory=threading.Event)
    reason: Reason = Reason.ABORTED_BY_OPERATOR

    def request_abort(self, reason: Reason = Reason.ABORTED_BY_OPERATOR) -> None:
        self.reason = reason
        self.abort.set()


@dataclass(frozen=True)
class MoveEnv:
    """Everything a move needs from its runner."""

    args: ExecutorArgs
    hypervisors: Callable[[str], Hypervisor]
    endpoints: Mapping[str, MigrationEndpoint]
    journal: Journal
    sink: EventSink
    check: CheckContext
    registry: BackingRegistry
    clock: Callable[[], float] = time.monotonic


class MoveRun:
    def __init__(self, rec: MigrationRecord, move: Move, env: MoveEnv, control: Control | None = None):
        self.rec, self.move, self.env = rec, move, env
        self.control = control or Control()
        self.t0 = env.clock()
        self._created: list[str] = []
        self._notes: list[str] = []  # what provisioning and cleanups did, kept in the final detail
        self._saved_at = -FIGURES_EVERY_S  # the first figures are journaled at once
        self._progress_at = self.t0
        self._backing_bytes = 0
        self._removed: list[str] = []  # of the volumes this move created, those removed

    # -- journal helpers ------------------------------------------------------------
    def _to(self, state: MoveState, **changes: Any) -> None:
        self.rec = self.env.journal.move_to(self.rec, state, **changes)

    def _end(
        self,
        status: OutcomeStatus,
        state: MoveState,
        reason: Reason,
        detail: str,
        error: LibvirtErrorInfo | None = None,
        **changes: Any,
    ) -> Outcome:
        detail = _join(detail, self._notes)
        self.rec = self.env.journal.finish(self.rec, state, reason, error, detail, **changes)
        return Outcome(status, reason, self.rec, error, detail)

    def _note(self, message: str, reason: Reason | None = None, action: str | None = None) -> None:
        self.env.sink(Note(self.rec.id, self.rec.vm, reason, message, action))

    def _on_created(self, path: str) -> None:
        """Called before a volume is created on the target: the journal lists it first."""
        self._created.append(path)
        self.rec = self.env.journal.update(self.rec, created_volumes=tuple(self._created))

    def _save_figures(self, force: bool = False, **figures: int) -> None:
        now = self.env.clock()
        if force or now - self._saved_at >= FIGURES_EVERY_S:
            self._saved_at = now
            self.rec = self.env.journal.update(self.rec, **figures)

    # -- the move -------------------------------------------------------------------
    def run(self) -> Outcome:
        try:
            return self._run()
        except Exception as exc:  # a bug or an unexpected failure: never leave the record open
            if self.rec.state.final:
                raise
            state = S.NEEDS_ATTENTION if self.rec.state in (S.MIGRATING, S.VERIFYING) else S.FAILED
            info = exc.info if isinstance(exc, MigrationError) else None
            return self._end(
                OutcomeStatus(state.value),
                state,
                Reason.NEEDS_ATTENTION if state == S.NEEDS_ATTENTION else Reason.MIGRATION_FAILED,
                f"unexpected error in state {self.rec.state.value}: {exc!r}",
                info,
            )

    def _run(self) -> Outcome:
        env = self.env
        self._to(S.PRECHECKING)
        if self.move.target in env.check.known_hosts and self.move.target != self.move.source:
            self._report(sweep_leftovers(env.hypervisors(self.move.target), env.registry), "leftovers")
        check = run_prechecks(self.move, env.hypervisors, env.check)
        if check.status == "skip":
            return self._end(OutcomeStatus.SKIPPED, S.ABORTED, check.reason, check.message)
        if check.status == "fail":
            return self._end(OutcomeStatus.REFUSED, S.REFUSED, check.reason, check.message, check.error)
        if self.control.abort.is_set():
            return self._end(OutcomeStatus.ABORTED, S.ABORTED, self.control.reason, "aborted before start")
        assert check.domain is not None and check.storage is not None
        holds = [p.path for p in check.storage.backing]
        for p in holds:
            env.registry.hold(self.move.target, p, +1)
        try:
            return self._provision_and_migrate(check.domain, check)
        finally:
            for p in holds:
                env.registry.hold(self.move.target, p, -1)

    def _provision_and_migrate(self, dom: DomainFacts, check: CheckResult) -> Outcome:
        env, move = self.env, self.move
        plan = check.storage
        assert plan is not None
        src, dst = env.hypervisors(move.source), env.hypervisors(move.target)
        self._to(
            S.COPYING_BACKING,
            vm_uuid=dom.uuid,
            copy_mode=plan.copy,
            predicted_bytes=plan.bytes_to_copy + dom.memory_bytes,
        )
        how = backing.Provisioning(
            self.rec.id,
            env.registry,
            env.args.backing_verify,
            self._on_created,
            self._on_backing_bytes,
            lambda done: self._report(done, "cleanup"),
        )
        try:
            prov = backing.provision(plan, src, dst, how)
        except backing.ProvisionError as exc:
            facts = EndFacts(S.COPYING_BACKING, problem=exc.reason, problem_detail=exc.message)
            return self._conclude(classify(facts), exc.error, src, dst, dom)
        if plan.why_full:
            prov.notes.insert(0, f"copying whole disks: {plan.why_full}")
        for n in prov.notes:
            self._note(n)
        self._notes = [*self._notes, *prov.notes]
        if self.control.abort.is_set():
            facts = EndFacts(
                S.COPYING_BACKING, abort=self.control.reason, abort_detail="aborted before migrating"
            )
            return self._conclude(classify(facts), None, src, dst, dom)
        request = MigrationRequest(
            dest_uri=env.endpoints[move.target].migration_uri,
            disks=tuple(d.target for d in dom.disks),
            copy=prov.copy,
            bandwidth_mib_s=self.rec.bandwidth_mib_s,
            tls=env.args.tls,
            auto_converge=env.args.auto_converge or env.args.on_stall == "auto-converge",
            post_copy=env.args.post_copy,
        )
        self._to(
            S.MIGRATING,
            copy_mode=prov.copy,
            backing_bytes=prov.backing_bytes,
            target_domain=dom.uuid,  # libvirt defines the incoming domain on the target from here on
            detail="; ".join(prov.notes),
        )
        to_copy = plan.bytes_to_copy if prov.copy == plan.copy else sum(d.capacity for d in plan.disks)
        call = watch_migration(
            self._watch_context(),
            src,
            request,
            dom.uuid,
            to_copy + dom.memory_bytes,
            lambda disk, mem: self._save_figures(disk_bytes=disk, memory_bytes=mem),
        )
        self._to(S.VERIFYING)
        seen = settle(
            src,
            dst,
            dom.uuid,
            env.args.settle_seconds,
            env.args.settle_seconds if call.stuck else convergence.completion_timeout(to_copy, env.args),
            env.args.poll_seconds,
        )
        ending = classify(EndFacts(S.VERIFYING, seen, call.error, call.abort, call.abort_detail))
        return self._conclude(ending, call.error, src, dst, dom, call)

    def _watch_context(self) -> WatchContext:
        return WatchContext(
            self.rec.id,
            self.move,
            self.env.args,
            self.env.sink,
            self.env.clock,
            self.t0,
            self.control.abort,
            lambda: self.control.reason,
        )

    def _on_backing_bytes(self, n: int) -> None:
        self._backing_bytes += n
        now = self.env.clock()
        if now - self._progress_at >= self.env.args.poll_seconds:
            self._progress_at = now
            m = self.move
            self.env.sink(
                Progress(
                    self.rec.id,
                    m.vm,
                    m.source,
                    m.target,
                    "copying_backing",
                    self._backing_bytes,
                    0,
                    0.0,
                    now - self.t0,
                )
            )
        self._save_figures(backing_bytes=self._backing_bytes)

    # -- the end ------------------------------------------------------------------------
    def _conclude(
        self,
        ending: Ending,
        error: LibvirtErrorInfo | None,
        src: Hypervisor,
        dst: Hypervisor,
        dom: DomainFacts,
        call: CallResult | None = None,
    ) -> Outcome:
        """Apply the ending: settle the target's volumes and the source's disks, then journal it."""
        figures = self._figures(dst, dom.uuid, ending, call)
        if ending.target == TargetFate.KEEP:
            if self._created:
                self._notes.append(f"kept on {dst.name} for a human to decide: {', '.join(self._created)}")
        else:
            target = remove_move_volumes(
                self._created,
                dst,
                self.env.registry,
                self.rec.id,
                hand_over=ending.target == TargetFate.HAND_OVER,
                own_holds=1,
            )
            self._report(target, "cleanup")
        if ending.clean_source:
            self._cleanup_source(src, [d.path for d in dom.disks])
        return self._end(
            ending.status,
            ending.state,
            ending.reason,
            ending.summary,
            error,
            removed_volumes=tuple(self._removed),
            **figures,
        )

    def _report(self, done: Cleanup, what: str) -> None:
        """Log (as a Note) and keep in the final detail what a cleanup removed, kept or could not do."""
        if done.host == self.move.target:
            self._removed += [p for p in done.removed if p in self._created]
        line = done.describe()
        if line:
            self._note(f"{what}: {line}")
            self._notes.append(line)

    def _figures(self, dst: Hypervisor, ref: str, ending: Ending, call: CallResult | None) -> dict[str, Any]:
        """Bytes libvirt reported (never below what the journal already has), downtime on success."""
        disk, mem = call.figures() if call is not None else (0, 0)
        disk, mem = max(disk, self.rec.disk_bytes), max(mem, self.rec.memory_bytes)
        out: dict[str, Any] = {"backing_bytes": max(self._backing_bytes, self.rec.backing_bytes)}
        if ending.state == S.SUCCEEDED:
            try:
                done = dst.completed_stats(ref)
            except MigrationError:
                done = {}
            disk, mem = max(disk, done.get("disk_processed", 0)), max(mem, done.get("memory_processed", 0))
            if "downtime" in done:
                out["downtime_ms"] = float(done["downtime"])
        return {**out, "disk_bytes": disk, "memory_bytes": mem}

    def _cleanup_source(self, src: Hypervisor, paths: list[str]) -> None:
        args = self.env.args
        if args.source_cleanup == "keep":
            self._notes.append(f"source volumes kept on {src.name}: {', '.join(paths)}")
            return
        if args.keep_source_minutes > 0:
            timer = threading.Timer(
                args.keep_source_minutes * 60,
                lambda: self._note("source cleanup: " + remove_source_disks(paths, src).describe()),
            )
            timer.daemon = True
            timer.start()
            self._notes.append(f"source volumes on {src.name} removed in {args.keep_source_minutes:g} min")
            return
        self._report(remove_source_disks(paths, src), "source cleanup")


def _join(head: str, rest: list[str] | tuple[str, ...]) -> str:
    return "; ".join([x for x in (head, *rest) if x])
