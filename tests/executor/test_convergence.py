"""convergence.decide on synthetic job-stats series."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.executor.args import ExecutorArgs
from balancer.executor.convergence import (
    Abort,
    AutoConverge,
    Continue,
    JobSample,
    RaiseDowntime,
    StartPostCopy,
    Watch,
    completion_timeout,
    decide,
    progress,
)
from balancer.reasons import Reason

MIB = 1 << 20


def series(
    remaining_per_iteration: list[int],
    per_iteration: int = 3,
    dirty: int = 0,
    bps: int = 8 * MIB,
    start: float = 0.0,
    dt: float = 0.5,
) -> list[JobSample]:
    """Samples of a RAM phase: iteration i starts with remaining[i] MiB and sends some of it."""
    out: list[JobSample] = []
    t = start
    sent = 0
    for it, rem in enumerate(remaining_per_iteration, start=1):
        for k in range(per_iteration):
            left = max(0, rem * MIB - k * bps // 2)
            sent += bps // 2
            out.append(
                JobSample(
                    t=t,
                    data_processed=sent,
                    data_remaining=left,
                    memory_processed=sent,
                    memory_remaining=left,
                    memory_bps=bps,
                    dirty_rate_bytes_s=dirty,
                    memory_iteration=it,
                )
            )
            t += dt
    return out


def watch(**kw: object) -> Watch:
    base: dict[str, object] = {"started_at": 0.0, "timeout_s": 1000.0, "since": 0.0}
    base.update(kw)
    return Watch(**base)  # type: ignore[arg-type]


def first_action(samples: list[JobSample], args: ExecutorArgs, w: Watch) -> tuple[int, object]:
    """Feed the samples one by one, as the poll loop does; index and action of the first non-Continue."""
    for i in range(1, len(samples) + 1):
        a = decide(samples[:i], samples[i - 1].t, args, w)
        if not isinstance(a, Continue):
            return i, a
    return -1, Continue()


def test_converging_migration_is_left_alone() -> None:
    s = series([100, 40, 16, 6, 2, 1])
    assert first_action(s, ExecutorArgs(), watch())[0] == -1


def test_tcg_dirty_rate_zero_remaining_flat_is_detected_within_n_iterations() -> None:
    """Under TCG libvirt reports dirty rate 0; the flat remaining bytes alone must reveal the stall."""
    args = ExecutorArgs(stall_iterations=3)
    s = series([100, 48, 48, 47, 48, 48, 48, 48, 48], dirty=0)
    i, action = first_action(s, args, watch())
    assert isinstance(action, RaiseDowntime) and action.ms == args.downtime_steps_ms[0]
    iteration = s[i - 1].memory_iteration
    assert iteration <= 1 + args.stall_iterations + 1, f"detected only at iteration {iteration}"


def test_dirty_rate_above_transfer_rate_is_detected() -> None:
    args = ExecutorArgs(stall_iterations=2, on_stall="abort")
    # remaining shrinks a little (so signal b stays quiet) but the guest dirties faster than we send
    s = series([100, 60, 50, 45, 41, 37], dirty=20 * MIB, bps=8 * MIB)
    _i, action = first_action(s, args, watch())
    assert isinstance(action, Abort) and action.reason == Reason.NOT_CONVERGING
    assert "dirties" in action.detail


def test_downtime_steps_then_abort() -> None:
    args = ExecutorArgs(stall_iterations=2, downtime_steps_ms=(100, 300))
    s = series([100] + [50] * 30)
    w = watch()
    actions = []
    for i in range(1, len(s) + 1):
        a = decide(s[:i], s[i - 1].t, args, w)
        w = w.after(a, s[i - 1].t)
        if not isinstance(a, Continue):
            actions.append(a)
        if isinstance(a, Abort):
            break
    assert [type(a) for a in actions] == [RaiseDowntime, RaiseDowntime, Abort]
    assert [a.ms for a in actions[:2]] == [100, 300]  # type: ignore[union-attr]


def test_auto_converge_gets_a_grace_then_post_copy_when_allowed() -> None:
    args = ExecutorArgs(stall_iterations=2, on_stall="auto-converge", post_copy=True)
    s = series([100] + [50] * 30)
    w = watch(auto_converge=True)
    seen = []
    for i in range(1, len(s) + 1):
        a = decide(s[:i], s[i - 1].t, args, w)
        w = w.after(a, s[i - 1].t)
        if not isinstance(a, Continue):
            seen.append(type(a))
        if len(seen) == 3:
            break
    assert seen[:2] == [AutoConverge, StartPostCopy]


def test_completion_timeout() -> None:
    args = ExecutorArgs()
    assert completion_timeout(1 << 30, args) == 800 * 2  # minimum 2 GiB
    assert completion_timeout(4 << 30, args) == 800 * 4
    s = series([100, 40])
    a = decide(s, 2000.0, args, watch(timeout_s=1600.0))
    assert isinstance(a, Abort) and a.reason == Reason.COMPLETION_TIMEOUT


def test_no_progress_aborts() -> None:
    args = ExecutorArgs(no_progress_seconds=10)
    frozen = [JobSample(t=float(t), data_processed=5 * MIB, disk_processed=5 * MIB) for t in range(30)]
    i, a = first_action(frozen, args, watch())
    assert isinstance(a, Abort) and a.reason == Reason.NO_PROGRESS
    assert frozen[i - 1].t >= 10


def test_disk_phase_never_counts_as_memory_stall() -> None:
    disk = [
        JobSample(t=t * 0.5, data_processed=t * MIB, disk_processed=t * MIB, disk_remaining=MIB)
        for t in range(100)
    ]
    assert first_action(disk, ExecutorArgs(stall_iterations=1), watch())[0] == -1


def test_progress_rate_over_window() -> None:
    s = [JobSample(t=t, data_processed=int(t * 10 * MIB), data_remaining=100) for t in (0.0, 1.0, 2.0, 3.0)]
    copied, left, rate = progress(s, window_s=2.0)
    assert copied == 30 * MIB and left == 100
    assert abs(rate - 10 * MIB) < 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=1, max_size=12), st.integers(1, 5))
def test_shrinking_remaining_never_stalls(drops: list[int], n: int) -> None:
    """Remaining that shrinks by more than 10 % every iteration is never reported as not converging."""
    rem = [1000]
    for _ in drops:
        rem.append(int(rem[-1] * 0.85))
    s = series(rem)
    assert first_action(s, ExecutorArgs(stall_iterations=n), watch())[0] == -1
