"""A clock the test sets by hand: inject it where the code takes a ``Callable[[], float]`` clock (the
lease keeper's monotonic clock, the store's lease clock, the loop's, the API's) and move ``now``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ManualClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now
