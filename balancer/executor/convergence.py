"""Convergence of a running migration (pure): job-stats samples → keep going, act, or abort.

``decide(history, now, args, watch)`` looks at the samples taken since the last action and returns
one of :class:`Continue`, :class:`RaiseDowntime`, :class:`AutoConverge`, :class:`StartPostCopy` or
:class:`Abort`. Signals, in this order:

1. completion timeout: ``completion_timeout_s_per_gib`` × GiB to copy (at least
   ``completion_timeout_min_gib``) since the migration started → abort (``completion_timeout``);
2. no progress: ``data_processed`` has not grown for ``no_progress_seconds`` → abort (``no_progress``);
3. not converging, either
   a. the dirty rate (pages/s × page size) ≥ the RAM transfer rate in every sample of the last
      ``stall_iterations`` memory iterations, or
   b. the RAM still to send at each iteration's peak has not shrunk by 10 % across the last
      ``stall_iterations`` iterations (the only signal under TCG, where libvirt reports a dirty rate
      of 0). The first pass (iteration ≤ 1) is the bulk copy and never counts.
   → per ``on_stall``: raise the allowed downtime through ``downtime_steps_ms``; or rely on
   auto-converge (started with the migration: libvirt 9 cannot switch it on mid-flight) for another
   ``stall_iterations`` iterations; then post-copy when ``post_copy`` allows it; then abort.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from balancer.executor.args import ExecutorArgs
from balancer.reasons import Reason

GIB = 1 << 30
SHRINK_FRACTION = 0.10  # an iteration "makes progress" when its peak is 10 % below the best before


@dataclass(frozen=True)
class JobSample:
    """One poll of a migration job (bytes, bytes/s, ms); ``t`` is a monotonic time in seconds."""

    t: float
    data_total: int = 0
    data_processed: int = 0
    data_remaining: int = 0
    disk_total: int = 0
    disk_processed: int = 0
    disk_remaining: int = 0
    memory_total: int = 0
    memory_processed: int = 0
    memory_remaining: int = 0
    memory_bps: int = 0
    dirty_rate_bytes_s: int = 0  # memory_dirty_rate (pages/s) × memory_page_size; often 0 under TCG
    memory_iteration: int = 0
    expected_downtime_ms: int = 0

    @property
    def phase(self) -> str:
        """``disk`` while libvirt mirrors disks, ``memory`` once RAM is being sent."""
        return "memory" if self.memory_processed > 0 or self.memory_iteration > 0 else "disk"


@dataclass(frozen=True)
class Watch:
    """What the poll loop has done so far; ``since`` is when the last action was taken."""

    started_at: float
    timeout_s: float
    since: float
    downtime_steps_done: int = 0
    auto_converge: bool = False  # the migration was started with VIR_MIGRATE_AUTO_CONVERGE
    auto_converge_granted: bool = False
    post_copy_started: bool = False

    def after(self, action: Action, now: float) -> Watch:
        """The watch once ``action`` has been applied at ``now``."""
        if isinstance(action, RaiseDowntime):
            return replace(self, since=now, downtime_steps_done=self.downtime_steps_done + 1)
        if isinstance(action, AutoConverge):
            return replace(self, since=now, auto_converge_granted=True)
        if isinstance(action, StartPostCopy):
            return replace(self, since=now, post_copy_started=True)
        return self


@dataclass(frozen=True)
class Continue:
    pass


@dataclass(frozen=True)
class RaiseDowntime:
    ms: int
    detail: str


@dataclass(frozen=True)
class AutoConverge:
    detail: str


@dataclass(frozen=True)
class StartPostCopy:
    detail: str


@dataclass(frozen=True)
class Abort:
    reason: Reason
    detail: str


Action = Continue | RaiseDowntime | AutoConverge | StartPostCopy | Abort


def completion_timeout(bytes_to_copy: int, args: ExecutorArgs) -> float:
    """Seconds a migration may take: 800 s per GiB to copy by default, for at least 2 GiB."""
    gib = max(bytes_to_copy / GIB, args.completion_timeout_min_gib)
    return args.completion_timeout_s_per_gib * gib


def decide(history: Sequence[JobSample], now: float, args: ExecutorArgs, watch: Watch) -> Action:
    """What to do about the migration whose samples (oldest first) are ``history``."""
    elapsed = now - watch.started_at
    if elapsed >= watch.timeout_s:
        return Abort(Reason.COMPLETION_TIMEOUT, f"running {elapsed:.0f} s, limit {watch.timeout_s:.0f} s")
    idle = now - last_progress_at(history, watch.started_at)
    if idle >= args.no_progress_seconds:
        return Abort(Reason.NO_PROGRESS, f"no bytes transferred for {idle:.0f} s")
    recent = [s for s in history if s.t >= watch.since and s.phase == "memory"]
    stalled = _dirtier_than_sent(recent, args.stall_iterations) or _not_shrinking(
        recent, args.stall_iterations
    )
    if stalled is None:
        return Continue()
    return _on_stall(stalled, args, watch)


def last_progress_at(history: Sequence[JobSample], started_at: float) -> float:
    """When ``data_processed`` last grew (the start when it never did)."""
    best = 0
    at = started_at
    for s in history:
        if s.data_processed > best:
            at, best = max(at, s.t), s.data_processed
    return at


def _by_iteration(samples: Sequence[JobSample]) -> dict[int, list[JobSample]]:
    out: dict[int, list[JobSample]] = {}
    for s in samples:
        if s.memory_iteration > 1:
            out.setdefault(s.memory_iteration, []).append(s)
    return out


def _dirtier_than_sent(samples: Sequence[JobSample], iterations: int) -> str | None:
    groups = _by_iteration(samples)
    if len(groups) < iterations:
        return None
    last = [groups[i] for i in sorted(groups)[-iterations:]]
    if all(s.dirty_rate_bytes_s > 0 and s.dirty_rate_bytes_s >= s.memory_bps for g in last for s in g):
        s = last[-1][-1]
        return (
            f"guest dirties {s.dirty_rate_bytes_s / 2**20:.1f} MiB/s, at least the "
            f"{s.memory_bps / 2**20:.1f} MiB/s sent, for {iterations} iterations"
        )
    return None


def _not_shrinking(samples: Sequence[JobSample], iterations: int) -> str | None:
    groups = _by_iteration(samples)
    if len(groups) < iterations + 1:
        return None
    peaks = [max(s.memory_remaining for s in groups[i]) for i in sorted(groups)]
    before, last = peaks[:-iterations], peaks[-iterations:]
    best = min(before)
    if min(last) > best * (1.0 - SHRINK_FRACTION):
        return (
            f"RAM left to send stays at {min(last) / 2**20:.1f} MiB (best before "
            f"{best / 2**20:.1f} MiB) over {iterations} iterations"
        )
    return None


def _on_stall(why: str, args: ExecutorArgs, watch: Watch) -> Action:
    if args.on_stall == "raise-downtime" and watch.downtime_steps_done < len(args.downtime_steps_ms):
        ms = args.downtime_steps_ms[watch.downtime_steps_done]
        return RaiseDowntime(ms, f"{why}; allowing {ms} ms downtime")
    if args.on_stall == "auto-converge" and watch.auto_converge and not watch.auto_converge_granted:
        return AutoConverge(f"{why}; giving auto-converge {args.stall_iterations} more iterations")
    if args.post_copy and not watch.post_copy_started:
        return StartPostCopy(f"{why}; switching to post-copy")
    return Abort(Reason.NOT_CONVERGING, why)


def progress(history: Sequence[JobSample], window_s: float = 2.0) -> tuple[int, int, float]:
    """(bytes copied, bytes remaining, bytes/s over the last ``window_s``) of the newest sample."""
    if not history:
        return 0, 0, 0.0
    last = history[-1]
    first = last
    for s in reversed(history):
        if last.t - s.t > window_s:
            break
        first = s
    dt = last.t - first.t
    rate = (last.data_processed - first.data_processed) / dt if dt > 0 else 0.0
    return last.data_processed, last.data_remaining, max(rate, 0.0)
