"""Where a VM really is after a migration attempt: fresh look-ups on both hosts, awaited until settled.

Success is never taken from the migrate call: only "running on the target, absent from the source"
is. ``observe`` reads both hosts once; ``settle`` polls until the picture is final (no job left on
the source, no half-made incoming domain on the target) or a deadline passes. What the picture
means is decided by ``ending.classify``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from balancer.errors import MigrationError
from balancer.executor.ending import Placement, Sighting
from balancer.executor.hypervisor import MigrationHost

__all__ = ["Placement", "Sighting", "observe", "settle"]


def observe(src: MigrationHost, dst: MigrationHost, ref: str) -> Sighting:
    """Look the domain (UUID preferred) up on both hosts with fresh calls."""
    s = t = None
    se = te = ""
    try:
        s = src.domain(ref)
    except MigrationError as exc:
        se = exc.info.message
    try:
        t = dst.domain(ref)
    except MigrationError as exc:
        te = exc.info.message
    return Sighting(s, t, se, te)


def settle(
    src: MigrationHost,
    dst: MigrationHost,
    ref: str,
    settle_s: float,
    job_s: float,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Sighting:
    """Poll until TARGET_ONLY, or SOURCE_ONLY / SOURCE_STOPPED with the target clean; waits up to
    ``job_s`` while the source still has a job and up to ``settle_s`` for anything else. Returns
    the last sighting."""
    start = clock()
    while True:
        seen = observe(src, dst, ref)
        p = seen.placement
        if p in (Placement.TARGET_ONLY, Placement.SOURCE_STOPPED):
            return seen
        if p == Placement.SOURCE_ONLY and not seen.target_error:
            return seen
        elapsed = clock() - start
        limit = job_s if p == Placement.MIGRATING else settle_s
        if elapsed >= limit:
            return seen
        sleep(poll_s)
