"""One move end to end: pre-checks, target storage, migrateToURI3 under a cap, polling, verify, cleanup.

``MoveRun(record, move, env, control).run() -> Outcome``. The journal is written before each step
(``prechecking``, ``copying_backing``, ``migrating``, ``verifying``) and at the end. The blocking
migrate call runs in its own thread on its own connection; this thread polls the job every
``poll_seconds``, feeds ``convergence.decide`` and applies what it returns. The outcome comes from
fresh look-ups on both hosts, never from the migrate call alone. On success the source's own disk
images are removed (``source_cleanup``); otherwise the volumes pre-created on the target are, once
the target has no domain using them. Nothing here powers off, destroys or undefines a domain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from balancer.errors import LibvirtErrorInfo, MigrationError
from balancer.executor import backing, convergence
from balancer.executor.args import ExecutorArgs
from balancer.executor.events import EventSink, Note, Outcome, OutcomeStatus, Progress
from balancer.executor.facts import MigrationEndpoint, MigrationRequest
from balancer.executor.hypervisor import Hypervisor
from balancer.executor.journal import Journal
from balancer.executor.prechecks import CheckContext, CheckResult, run_prechecks
from balancer.executor.verify import Placement, Sighting, settle
from balancer.model import MigrationRecord, Move, MoveState
from balancer.reasons import Reason

S = MoveState


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
    clock: Callable[[], float] = time.monotonic


class MoveRun:
    def __init__(self, rec: MigrationRecord, move: Move, env: MoveEnv, control: Control | None = None):
        self.rec, self.move, self.env = rec, move, env
        self.control = control or Control()
        self.samples: list[convergence.JobSample] = []
        self.t0 = env.clock()
        self._created: list[str] = []
        self.stuck = False  # the migrate call outlived abortJob by more than settle_seconds
        self._notes: list[str] = []  # what provisioning did, kept in the final detail

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
        detail = "; ".join([*self._notes, detail]) if detail else "; ".join(self._notes)
        self.rec = self.env.journal.finish(self.rec, state, reason, error, detail, **changes)
        return Outcome(status, reason, self.rec, error, detail)

    def _note(self, message: str, reason: Reason | None = None, action: str | None = None) -> None:
        self.env.sink(Note(self.rec.id, self.rec.vm, reason, message, action))

    def _on_created(self, path: str) -> None:
        self._created.append(path)
        self.rec = self.env.journal.update(self.rec, created_volumes=tuple(self._created))

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
        check = run_prechecks(self.move, env.hypervisors, env.check)
        if check.status == "skip":
            return self._end(OutcomeStatus.SKIPPED, S.ABORTED, check.reason, check.message)
        if check.status == "fail":
            return self._end(OutcomeStatus.FAILED, S.FAILED, check.reason, check.message, check.error)
        if self.control.abort.is_set():
            return self._end(OutcomeStatus.ABORTED, S.ABORTED, self.control.reason, "aborted before start")
        assert check.domain is not None and check.storage is not None
        holds = [p.path for p in check.storage.backing]
        for p in holds:
            backing.REGISTRY.hold(self.move.target, p, +1)
        try:
            return self._provision_and_migrate(check)
        finally:
            for p in holds:
                backing.REGISTRY.hold(self.move.target, p, -1)

    def _provision_and_migrate(self, check: CheckResult) -> Outcome:
        env, move = self.env, self.move
        dom, plan = check.domain, check.storage
        assert dom is not None and plan is not None
        src, dst = env.hypervisors(move.source), env.hypervisors(move.target)
        self._to(
            S.COPYING_BACKING,
            vm_uuid=dom.uuid,
            copy_mode=plan.copy,
            predicted_bytes=plan.bytes_to_copy + dom.memory_bytes,
        )
        copied = [0]
        last = [self.env.clock()]

        def on_bytes(n: int) -> None:
            copied[0] += n
            now = self.env.clock()
            if now - last[0] >= env.args.poll_seconds:
                last[0] = now
                env.sink(
                    Progress(
                        self.rec.id,
                        move.vm,
                        move.source,
                        move.target,
                        "copying_backing",
                        copied[0],
                        0,
                        0.0,
                        now - self.t0,
                    )
                )

        try:
            prov = backing.provision(plan, src, dst, env.args.backing_verify, self._on_created, on_bytes)
        except backing.ProvisionError as exc:
            problems = backing.remove_created(self._created, [p.path for p in plan.backing], dst, True)
            left = tuple(p for p in self._created if any(p in q for q in problems))
            return self._end(
                OutcomeStatus.FAILED,
                S.FAILED,
                exc.reason,
                _join(exc.message, problems),
                exc.error,
                created_volumes=left,
            )
        for n in prov.notes:
            self._note(n)
        self._notes = list(prov.notes)
        if self.control.abort.is_set():
            return self._fail_cleanup(
                OutcomeStatus.ABORTED,
                S.ABORTED,
                self.control.reason,
                "aborted before migrating",
                None,
                prov,
                src,
                dst,
                dom.uuid,
            )
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
            S.MIGRATING, copy_mode=prov.copy, backing_bytes=prov.backing_bytes, detail="; ".join(prov.notes)
        )
        to_copy = plan.bytes_to_copy if prov.copy == plan.copy else sum(d.capacity for d in plan.disks)
        error, abort_reason, abort_detail = self._migrate(src, request, dom.uuid, to_copy + dom.memory_bytes)
        self._to(S.VERIFYING)
        seen = settle(
            src,
            dst,
            dom.uuid,
            env.args.settle_seconds,
            env.args.settle_seconds if self.stuck else convergence.completion_timeout(to_copy, env.args),
            env.args.poll_seconds,
        )
        figures = self._figures(dst, dom.uuid, seen.placement == Placement.TARGET_ONLY)
        if seen.placement == Placement.TARGET_ONLY:
            detail = self._cleanup_source(src, [d.path for d in dom.disks])
            return self._end(
                OutcomeStatus.SUCCEEDED,
                S.SUCCEEDED,
                Reason.SUCCEEDED,
                _join(f"verified: {seen.describe()}", detail),
                None,
                **figures,
            )
        if (
            seen.source is not None
            and seen.source.running
            and not seen.source.job_active
            and not (seen.target is not None and seen.target.running)
        ):
            status = OutcomeStatus.ABORTED if abort_reason else OutcomeStatus.FAILED
            state = S.ABORTED if abort_reason else S.FAILED
            reason = abort_reason or Reason.MIGRATION_FAILED
            if error is None and abort_reason is None:
                reason = Reason.VERIFY_FAILED
            text = _join(
                abort_detail or (error.message if error else "migration call returned"), [seen.describe()]
            )
            return self._fail_cleanup(
                status, state, reason, text, error, prov, src, dst, dom.uuid, seen, figures
            )
        return self._end(
            OutcomeStatus.NEEDS_ATTENTION,
            S.NEEDS_ATTENTION,
            Reason.NEEDS_ATTENTION,
            _join(
                f"VM not in one clean place: {seen.describe()}",
                [error.message if error else "", abort_detail],
            ),
            error,
            **figures,
        )

    def _fail_cleanup(
        self,
        status: OutcomeStatus,
        state: MoveState,
        reason: Reason,
        text: str,
        error: LibvirtErrorInfo | None,
        prov: backing.Provisioned,
        src: Hypervisor,
        dst: Hypervisor,
        ref: str,
        seen: Sighting | None = None,
        figures: Mapping[str, object] | None = None,
    ) -> Outcome:
        problems: list[str] = []
        if seen is not None and (seen.target is not None or seen.target_error):
            problems.append("target not clean; pre-created volumes kept: " + ", ".join(self._created))
            left = tuple(self._created)
        else:
            problems = backing.remove_created(self._created, prov.copied_backing, dst, True)
            left = tuple(p for p in self._created if any(p in q for q in problems))
        return self._end(
            status, state, reason, _join(text, problems), error, created_volumes=left, **(figures or {})
        )

    # -- the libvirt call and its watch ---------------------------------------------
    def _migrate(
        self, src: Hypervisor, request: MigrationRequest, ref: str, total_bytes: int
    ) -> tuple[LibvirtErrorInfo | None, Reason | None, str]:
        env, clock = self.env, self.env.clock
        result: list[LibvirtErrorInfo | None] = [None]

        def call() -> None:
            try:
                src.migrate(ref, request)
            except MigrationError as exc:
                result[0] = exc.info

        worker = threading.Thread(target=call, name=f"migrate-{self.move.vm}", daemon=True)
        start = clock()
        watch = convergence.Watch(
            start,
            convergence.completion_timeout(total_bytes, env.args),
            start,
            auto_converge=request.auto_converge,
        )
        abort_reason: Reason | None = None
        abort_detail = ""
        aborted_at = start
        worker.start()
        while True:
            worker.join(env.args.poll_seconds)
            if not worker.is_alive():
                break
            now = clock()
            try:
                sample = src.job_stats(ref, now)
            except MigrationError:
                sample = None  # the domain may be leaving the source right now; the call will tell
            if sample is not None:
                self.samples.append(sample)
                del self.samples[:-4000]
                done, left, rate = convergence.progress(self.samples)
                env.sink(
                    Progress(
                        self.rec.id,
                        self.move.vm,
                        self.move.source,
                        self.move.target,
                        sample.phase,
                        done,
                        left,
                        rate,
                        now - self.t0,
                        sample.memory_iteration,
                    )
                )
            if self.control.abort.is_set() and abort_reason is None:
                abort_reason, abort_detail = self.control.reason, "abort requested"
                self._abort(src, ref, abort_detail)
                aborted_at = now
                continue
            if abort_reason is not None:
                if now - aborted_at > env.args.settle_seconds:
                    # abortJob did not end the call (e.g. a mirror stuck on a dead link): stop waiting
                    # for it; verification reports the job still running and the move needs attention
                    self.stuck = True
                    abort_detail += f"; the job did not end within {env.args.settle_seconds:g} s of abortJob"
                    break
                continue
            action = convergence.decide(self.samples, now, env.args, watch)
            watch = watch.after(action, now)
            if isinstance(action, convergence.Abort):
                abort_reason, abort_detail = action.reason, action.detail
                self._abort(src, ref, action.detail, action.reason, "abort")
                aborted_at = now
            elif isinstance(action, convergence.RaiseDowntime):
                self._act(partial(src.set_max_downtime, ref, action.ms), action.detail, "raise_downtime")
            elif isinstance(action, convergence.StartPostCopy):
                self._act(partial(src.start_post_copy, ref), action.detail, "post_copy")
            elif isinstance(action, convergence.AutoConverge):
                self._note(action.detail, Reason.NOT_CONVERGING, "auto_converge")
        return result[0], abort_reason, abort_detail

    def _act(self, fn: Callable[[], None], detail: str, action: str) -> None:
        try:
            fn()
            self._note(detail, Reason.NOT_CONVERGING, action)
        except MigrationError as exc:
            self._note(f"{detail}: failed: {exc}", Reason.NOT_CONVERGING)

    def _abort(
        self, src: Hypervisor, ref: str, detail: str, reason: Reason | None = None, action: str | None = None
    ) -> None:
        try:
            src.abort_job(ref)
            self._note(f"aborting migration: {detail}", reason or self.control.reason, action)
        except MigrationError as exc:
            self._note(f"abortJob failed ({exc}); waiting for the call to end", reason)

    def _figures(self, dst: Hypervisor, ref: str, succeeded: bool) -> dict[str, object]:
        disk = max((s.disk_processed for s in self.samples), default=0)
        mem = max((s.memory_processed for s in self.samples), default=0)
        out: dict[str, object] = {"disk_bytes": disk, "memory_bytes": mem}
        if succeeded:
            try:
                done = dst.completed_stats(ref)
            except MigrationError:
                done = {}
            out["memory_bytes"] = max(mem, done.get("memory_processed", 0))
            out["disk_bytes"] = max(disk, done.get("disk_processed", 0))
            if "downtime" in done:
                out["downtime_ms"] = float(done["downtime"])
        return out

    def _cleanup_source(self, src: Hypervisor, paths: list[str]) -> list[str]:
        args = self.env.args
        if args.source_cleanup == "keep":
            return [f"source volumes kept on {src.name}: {', '.join(paths)}"]
        if args.keep_source_minutes > 0:
            timer = threading.Timer(args.keep_source_minutes * 60, backing.remove_source_disks, (paths, src))
            timer.daemon = True
            timer.start()
            return [f"source volumes on {src.name} removed in {args.keep_source_minutes:g} min"]
        removed, problems = backing.remove_source_disks(paths, src)
        return ([f"removed on {src.name}: {', '.join(removed)}"] if removed else []) + problems


def _join(head: str, rest: list[str] | tuple[str, ...]) -> str:
    return "; ".join([head, *[r for r in rest if r]])
