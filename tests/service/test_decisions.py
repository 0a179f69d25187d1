"""The planner's decisions are logged once each, when they change, not every tick."""

from __future__ import annotations

from dataclasses import replace

import pytest

from balancer.model import Skip
from balancer.reasons import Reason
from balancer.service.decisions import DecisionLog
from tests.store.builders import move, plan


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={name} ")]


def test_a_move_is_logged_the_first_tick_a_plan_holds_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    log = DecisionLog()
    first = plan(move("vm1"), move("vm2", target="n3"))
    log.record(first)
    log.record(first)  # the same plan again: nothing new
    assert len(events(caplog, "move_planned")) == 2
    log.record(plan(move("vm1"), move("vm2", target="n4")))  # vm2 planned elsewhere: a new decision
    assert [m for m in events(caplog, "move_planned") if "vm=vm2" in m][-1].count("target=n4") == 1
    assert len(events(caplog, "move_planned")) == 3
    log.record(plan(move("vm2", target="n4")))
    log.record(plan(move("vm1"), move("vm2", target="n4")))  # vm1 left the plan and came back
    assert len(events(caplog, "move_planned")) == 4


def test_a_skip_is_logged_when_its_reason_or_detail_changes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    log = DecisionLog()
    base = plan(move("vm1"))  # skips vm9: pinned
    log.record(base)
    log.record(base)
    assert len(events(caplog, "plan_skip")) == 1
    other = replace(base, skips=(Skip("vm", "vm9", Reason.COOLDOWN, "moved 3 min ago"),))
    log.record(other)
    log.record(other)
    assert [e.split(" reason=")[1].split()[0] for e in events(caplog, "plan_skip")] == ["pinned", "cooldown"]
