"""Pure: when to try a failing host again. Exponential backoff with ``now`` injected.

After the n-th consecutive failure (n ≥ 1) the next attempt waits ``min(max, min * 2**(n-1))``
seconds; one success resets it. Timeouts count as failures like refused connections.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Consecutive failures of one host and the earliest instant (epoch seconds) to try again."""

    failures: int = 0
    next_attempt_at: float = float("-inf")

    def ready(self, now: float) -> bool:
        return now >= self.next_attempt_at

    def failed(self, now: float, min_seconds: float, max_seconds: float) -> Backoff:
        failures = self.failures + 1
        return Backoff(failures=failures, next_attempt_at=now + delay(failures, min_seconds, max_seconds))

    def succeeded(self) -> Backoff:
        return Backoff()


def delay(failures: int, min_seconds: float, max_seconds: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0 when there were none)."""
    if failures <= 0:
        return 0.0
    # the exponent is capped so huge failure counts neither overflow nor matter (2**62 s > any max)
    return float(min(max_seconds, min_seconds * 2.0 ** min(failures - 1, 62)))
