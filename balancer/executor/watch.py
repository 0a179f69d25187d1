"""The blocking migrate call and its watch: poll the job, apply what ``convergence.decide`` says, abort.

``watch_migration(...) -> CallResult``. The call runs in its own thread on its own connection;
this thread polls the job every ``poll_seconds``, reports Progress, feeds ``convergence.decide``
and applies what it returns (raise downtime, post-copy, abort). It ends when the call returns, or
``settle_seconds`` after an abortJob the call did not obey (``stuck``). The bytes libvirt reports
are passed to ``on_figures`` as they grow, so a journal can keep them if this process dies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from balancer.errors import LibvirtErrorInfo, MigrationError
from balancer.executor import convergence
from balancer.executor.args import ExecutorArgs
from balancer.executor.events import EventSink, Note, Progress
from balancer.executor.facts import MigrationRequest
from balancer.executor.hypervisor import MigrationHost
from balancer.model import Move
from balancer.reasons import Reason


@dataclass
class CallResult:
    """How the migrate call ended: libvirt's error, our abort and why, and the job samples seen."""

    error: LibvirtErrorInfo | None = None
    abort: Reason | None = None
    abort_detail: str = ""
    stuck: bool = False  # the call outlived abortJob by more than settle_seconds
    samples: list[convergence.JobSample] = field(default_factory=list)

    def figures(self) -> tuple[int, int]:
        """(disk bytes, memory bytes) libvirt reported so far."""
        disk = max((s.disk_processed for s in self.samples), default=0)
        mem = max((s.memory_processed for s in self.samples), default=0)
        return disk, mem


@dataclass(frozen=True)
class WatchContext:
    """Who is watched and where events go."""

    record_id: str
    move: Move
    args: ExecutorArgs
    sink: EventSink
    clock: Callable[[], float]
    started: float  # when the move started (for Progress.elapsed_s)
    abort: threading.Event
    abort_reason: Callable[[], Reason]


def watch_migration(
    ctx: WatchContext,
    src: MigrationHost,
    request: MigrationRequest,
    ref: str,
    total_bytes: int,
    on_figures: Callable[[int, int], None] = lambda _d, _m: None,
) -> CallResult:
    """Run ``src.migrate(ref, request)`` and watch it until it ends (see the module docstring)."""
    args, clock, move = ctx.args, ctx.clock, ctx.move
    out = CallResult()

    def call() -> None:
        try:
            src.migrate(ref, request)
        except MigrationError as exc:
            out.error = exc.info

    worker = threading.Thread(target=call, name=f"migrate-{move.vm}", daemon=True)
    start = clock()
    watch = convergence.Watch(
        start, convergence.completion_timeout(total_bytes, args), start, auto_converge=request.auto_converge
    )
    aborted_at = start
    figures = (0, 0)
    worker.start()
    while True:
        worker.join(args.poll_seconds)
        if not worker.is_alive():
            break
        now = clock()
        try:
            sample = src.job_stats(ref, now)
        except MigrationError:
            sample = None  # the domain may be leaving the source right now; the call will tell
        if sample is not None:
            out.samples.append(sample)
            del out.samples[:-4000]
            done, left, rate = convergence.progress(out.samples)
            ctx.sink(
                Progress(
                    ctx.record_id,
                    move.vm,
                    move.source,
                    move.target,
                    sample.phase,
                    done,
                    left,
                    rate,
                    now - ctx.started,
                    sample.memory_iteration,
                )
            )
            if out.figures() != figures:
                figures = out.figures()
                on_figures(*figures)
        if ctx.abort.is_set() and out.abort is None:
            out.abort, out.abort_detail = ctx.abort_reason(), "abort requested"
            _abort(ctx, src, ref, out.abort_detail, out.abort)
            aborted_at = now
            continue
        if out.abort is not None:
            if now - aborted_at > args.settle_seconds:
                # abortJob did not end the call (e.g. a mirror stuck on a dead link): stop waiting
                # for it; verification reports the job still running and the move needs attention
                out.stuck = True
                out.abort_detail += f"; the job did not end within {args.settle_seconds:g} s of abortJob"
                break
            continue
        action = convergence.decide(out.samples, now, args, watch)
        watch = watch.after(action, now)
        if isinstance(action, convergence.Abort):
            out.abort, out.abort_detail = action.reason, action.detail
            _abort(ctx, src, ref, action.detail, action.reason, "abort")
            aborted_at = now
        elif isinstance(action, convergence.RaiseDowntime):
            _act(ctx, partial(src.set_max_downtime, ref, action.ms), action.detail, "raise_downtime")
        elif isinstance(action, convergence.StartPostCopy):
            _act(ctx, partial(src.start_post_copy, ref), action.detail, "post_copy")
        elif isinstance(action, convergence.AutoConverge):
            _note(ctx, action.detail, Reason.NOT_CONVERGING, "auto_converge")
    return out


def _note(ctx: WatchContext, message: str, reason: Reason | None, action: str | None = None) -> None:
    ctx.sink(Note(ctx.record_id, ctx.move.vm, reason, message, action))


def _act(ctx: WatchContext, fn: Callable[[], None], detail: str, action: str) -> None:
    try:
        fn()
        _note(ctx, detail, Reason.NOT_CONVERGING, action)
    except MigrationError as exc:
        _note(ctx, f"{detail}: failed: {exc}", Reason.NOT_CONVERGING)


def _abort(
    ctx: WatchContext, src: MigrationHost, ref: str, detail: str, reason: Reason, action: str | None = None
) -> None:
    try:
        src.abort_job(ref)
        _note(ctx, f"aborting migration: {detail}", reason, action)
    except MigrationError as exc:
        _note(ctx, f"abortJob failed ({exc}); waiting for the call to end", reason)
