"""The daemon's loop (daemon/loop.py) on an injected monotonic clock: a tick every interval, intake in
between, late ticks coalesced into one (and said so), ``wake()`` cutting a wait short, ``between`` and
``on_tick`` called in the loop's own thread."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import pytest

from balancer.daemon.loop import Loop
from tests.clock import ManualClock
from tests.waiting import wait_for


@dataclass
class Steps:
    """A service for the loop: records when each tick and intake ran; a tick or an intake moves the
    clock by what it 'took'; the loop stops after ``ticks`` ticks."""

    clock: ManualClock
    stop: threading.Event
    ticks: int
    tick_cost: list[float] = field(default_factory=list)  # per tick, in order; 0 when not listed
    intake_cost: float = 1.0
    tick_times: list[float] = field(default_factory=list)
    intake_times: list[float] = field(default_factory=list)

    def tick(self) -> None:
        self.tick_times.append(self.clock.now)
        n = len(self.tick_times)
        self.clock.now += self.tick_cost[n - 1] if n <= len(self.tick_cost) else 0.0
        if n >= self.ticks:
            self.stop.set()

    def intake(self) -> None:
        self.intake_times.append(self.clock.now)
        self.clock.now += self.intake_cost


def run(steps: Steps, interval: float, **kw: object) -> Loop:
    loop = Loop(steps, interval, intake_seconds=0.001, monotonic=steps.clock, **kw)  # type: ignore[arg-type]
    loop.run(steps.stop)
    return loop


def test_a_tick_every_interval_with_intake_in_between() -> None:
    clock, stop = ManualClock(), threading.Event()
    steps = Steps(clock, stop, ticks=3)
    seen: list[int] = []
    between: list[float] = []
    loop = run(steps, 10.0, on_tick=seen.append, between=lambda: between.append(clock.now))
    assert steps.tick_times == [0.0, 10.0, 20.0]
    assert seen == [1, 2, 3] and loop.ticks == 3
    # intake every step until the next tick is due (each intake here takes one of the ten seconds)
    assert [t for t in steps.intake_times if t < 10] == [float(i) for i in range(10)]
    assert len(between) == len(steps.tick_times) + len(steps.intake_times)


def test_an_overrunning_tick_is_followed_by_one_coalesced_tick_not_a_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, stop = ManualClock(), threading.Event()
    steps = Steps(clock, stop, ticks=3, tick_cost=[35.0])  # the first tick takes three and a half intervals
    caplog.set_level(logging.WARNING, logger="balancer.daemon")
    run(steps, 10.0)
    assert steps.tick_times == [0.0, 35.0, 45.0]
    assert [r.getMessage() for r in caplog.records] == ["event=ticks_coalesced skipped=2 interval=10.0"]


def test_a_tick_slower_than_one_interval_only_is_not_reported() -> None:
    clock, stop = ManualClock(), threading.Event()
    steps = Steps(clock, stop, ticks=3, tick_cost=[12.0])
    run(steps, 10.0)
    assert steps.tick_times == [0.0, 12.0, 22.0]


def test_wake_cuts_the_wait_short_and_stop_ends_the_loop() -> None:
    stop = threading.Event()
    calls: list[str] = []

    class Service:
        def tick(self) -> None:
            calls.append("tick")

        def intake(self) -> None:
            calls.append("intake")

    loop = Loop(Service(), interval=3600.0, intake_seconds=3600.0)  # type: ignore[arg-type]
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    wait_for("the first intake", lambda: calls == ["tick", "intake"], 10)
    loop.wake()  # without it the next intake is an hour away
    wait_for("the intake after wake()", lambda: calls.count("intake") == 2, 10)
    stop.set()
    loop.wake()
    thread.join(10)
    assert not thread.is_alive()
    assert calls[:3] == ["tick", "intake", "intake"]
