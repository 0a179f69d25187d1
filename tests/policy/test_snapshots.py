"""Recorded snapshots (tests/snapshots/*.json, named after their contents) planned end to end."""

from __future__ import annotations

from pathlib import Path

from balancer.model import PlannerState, snapshot_from_json
from balancer.policy import PlanArgs, plan
from balancer.reasons import Reason
from tests.builders import NOW

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"


def load(name: str):  # type: ignore[no-untyped-def]
    return snapshot_from_json((SNAPSHOTS / name).read_text())


def test_three_hosts_one_draining() -> None:
    p = plan(load("three_hosts_one_draining.json"), PlannerState(), PlanArgs(), NOW)
    drains = [(m.vm, m.target) for m in p.moves if m.reason == Reason.DRAIN]
    assert [vm for vm, _ in drains] == ["db-1", "web-1", "web-2"]  # most bytes first
    assert {t for _, t in drains} <= {"bravo", "charlie"}
    assert not [s for s in p.skips if s.subject == "vm"]


def test_three_hosts_one_hot_for_three_ticks() -> None:
    p = plan(load("three_hosts_one_hot_for_three_ticks.json"), PlannerState(), PlanArgs(), NOW)
    hot = [m for m in p.moves if m.reason == Reason.HOTSPOT]
    assert [m.vm for m in hot] == ["worker-1"]  # 3 cores, the fewest bytes that bring h1 under 80 %
    assert p.overloaded_before == ("h1",) and p.overloaded_after == ()


def test_draining_host_with_vm_too_big_for_any_target() -> None:
    p = plan(load("draining_host_with_vm_too_big_for_any_target.json"), PlannerState(), PlanArgs(), NOW)
    assert [m.vm for m in p.moves] == ["fits"]
    skip = next(s for s in p.skips if s.name == "too-big")
    assert skip.reason == Reason.NO_MEMORY and "too-big needs 24.0 GiB memory" in skip.detail


def test_every_recorded_snapshot_plans() -> None:
    files = sorted(SNAPSHOTS.glob("*.json"))
    assert len(files) >= 3
    for f in files:
        plan(snapshot_from_json(f.read_text()), PlannerState(), PlanArgs(), NOW)
