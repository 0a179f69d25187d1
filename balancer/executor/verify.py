"""Where a VM really is after a migration attempt: fresh look-ups on both hosts, awaited until settled.

Success is never taken from the migrate call: only "running on the target, absent from the source"
is. ``observe`` reads both hosts once; ``settle`` polls until the picture is final (no job left on
the source, no half-made incoming domain on the target) or a deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from balancer.errors import MigrationError
from balancer.executor.facts import DomainFacts
from balancer.executor.hypervisor import Hypervisor


class Placement(StrEnum):
    TARGET_ONLY = "target_only"  # running on the target, absent from the source: migrated
    SOURCE_ONLY = "source_only"  # running on the source; the target has no domain (or is unreachable)
    MIGRATING = "migrating"  # the source still has a job: not final yet
    UNSETTLED = "unsettled"  # anything else: both, neither, paused, a host unreachable


@dataclass(frozen=True)
class Sighting:
    """One look at both hosts. ``*_error`` is set when that host could not be asked."""

    source: DomainFacts | None
    target: DomainFacts | None
    source_error: str = ""
    target_error: str = ""

    @property
    def placement(self) -> Placement:
        s, t = self.source, self.target
        if self.source_error == "" and s is None and t is not None and t.running and not self.target_error:
            return Placement.TARGET_ONLY
        if s is not None and s.job_active:
            return Placement.MIGRATING
        if s is not None and s.running and t is None:
            return Placement.SOURCE_ONLY
        return Placement.UNSETTLED

    def describe(self) -> str:
        def one(d: DomainFacts | None, err: str) -> str:
            if err:
                return f"unreachable ({err})"
            if d is None:
                return "absent"
            return (
                d.state + (", job running" if d.job_active else "") + ("" if d.persistent else ", transient")
            )

        return f"source: {one(self.source, self.source_error)}; target: {one(self.target, self.target_error)}"


def observe(src: Hypervisor, dst: Hypervisor, ref: str) -> Sighting:
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
    src: Hypervisor,
    dst: Hypervisor,
    ref: str,
    settle_s: float,
    job_s: float,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Sighting:
    """Poll until TARGET_ONLY, or SOURCE_ONLY with the target clean; waits up to ``job_s`` while the
    source still has a job and up to ``settle_s`` for anything else. Returns the last sighting."""
    start = clock()
    while True:
        seen = observe(src, dst, ref)
        p = seen.placement
        if p == Placement.TARGET_ONLY:
            return seen
        if p == Placement.SOURCE_ONLY and not seen.target_error:
            return seen
        elapsed = clock() - start
        limit = job_s if p == Placement.MIGRATING else settle_s
        if elapsed >= limit:
            return seen
        sleep(poll_s)
