"""The poll pool: overrunning jobs are abandoned and replaced, late results are cleaned up."""

from __future__ import annotations

import threading
import time

import pytest

from balancer.metrics.workers import WorkerPool


def test_jobs_run_concurrently_up_to_the_pool_size() -> None:
    pool = WorkerPool(3)
    barrier = threading.Barrier(3, timeout=2)
    jobs = [pool.submit(barrier.wait) for _ in range(3)]
    pool.wait(jobs, timeout=5)
    assert all(j.done and j.error is None for j in jobs)
    pool.close()


def test_an_overrunning_job_is_abandoned_replaced_and_cleaned_up_when_it_returns() -> None:
    pool = WorkerPool(1)
    release = threading.Event()
    late: list[str] = []
    stuck = pool.submit(lambda: (release.wait(5), "conn")[1], on_late=late.append)
    quick = pool.submit(lambda: "ok")
    started = time.monotonic()
    pool.wait([stuck, quick], timeout=0.3)
    assert time.monotonic() - started < 2
    assert stuck.abandoned and not stuck.done
    assert quick.done and quick.result == "ok"  # ran on the replacement thread
    assert pool.live_threads == 1
    release.set()
    deadline = time.monotonic() + 2
    while not late and time.monotonic() < deadline:
        time.sleep(0.01)
    assert late == ["conn"]
    pool.close()


def test_errors_are_handed_back_not_raised_in_the_worker() -> None:
    pool = WorkerPool(1)

    def boom() -> None:
        raise RuntimeError("bug")

    job = pool.submit(boom)
    pool.wait([job], timeout=2)
    assert isinstance(job.error, RuntimeError)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(lambda: None)


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WorkerPool(0)
