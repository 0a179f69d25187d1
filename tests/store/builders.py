"""Model values with a default for every field; keyword overrides give each test what it is about."""

from __future__ import annotations

from typing import Any

from balancer.model import MigrationRecord, Move, MoveCost, MoveState, Plan, Skip
from balancer.reasons import Reason

GIB = 1 << 30


def move(vm: str = "vm1", source: str = "n1", target: str = "n2", **overrides: Any) -> Move:
    values: dict[str, Any] = {
        "reason": Reason.BALANCE,
        "cost": MoveCost(disk_bytes=2 * GIB, backing_bytes=0, memory_bytes=GIB, seconds=30.0),
        "detail": f"{vm}: {source} -> {target}",
    }
    values.update(overrides)
    return Move(vm=vm, source=source, target=target, **values)


def plan(*moves: Move, created_at: float = 100.0) -> Plan:
    return Plan(
        created_at=created_at,
        moves=moves or (move("vm1"), move("vm2", target="n3", reason=Reason.DRAIN)),
        skips=(Skip(subject="vm", name="vm9", reason=Reason.PINNED, detail="pinned to n1"),),
        imbalance_before=0.31,
        imbalance_after=0.12,
        resource_imbalance_before={"cpu": 0.31, "memory": 0.2},
        resource_imbalance_after={"cpu": 0.12, "memory": 0.1},
        overloaded_before=("n1",),
    )


def record(id: str = "m1", **overrides: Any) -> MigrationRecord:
    values: dict[str, Any] = {
        "vm": "vm1",
        "source": "n1",
        "target": "n2",
        "reason": Reason.BALANCE,
        "state": MoveState.QUEUED,
        "created_at": 100.0,
        "updated_at": 100.0,
    }
    values.update(overrides)
    return MigrationRecord(id=id, **values)
