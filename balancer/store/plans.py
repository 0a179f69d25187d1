"""Stored plans: the Plan value as JSON plus one row per move, approvable as a whole or move by move.

Decisions (approve/reject) are allowed while a plan is proposed or approved; repeating a decision is a
no-op, contradicting a final one (approving a rejected, superseded or running plan) is a Conflict.
Every decision is audited in its transaction, repeats included (who asked for what).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from balancer.errors import Conflict, ErrorCode, NotFound, StoreError
from balancer.model import Plan, plan_from_dict, plan_to_dict
from balancer.reasons import Reason
from balancer.store import audit
from balancer.store.records import Automation, MoveStatus, PlanMoveRow, PlanRow, PlanStatus, decode
from balancer.store.tables import plan_moves, plans

_DECIDABLE = (PlanStatus.PROPOSED, PlanStatus.APPROVED)
_AUTOMATIONS = ("off", "recommend", "auto")


def save(
    conn: Connection,
    plan: Plan,
    automation: Automation,
    now: float,
    status: PlanStatus,
    expires_at: float | None = None,
    decided_by: str | None = None,
) -> int:
    """Insert the plan and its moves; moves start approved when the plan does, else proposed."""
    plan_id = conn.execute(
        insert(plans).values(
            created_at=plan.created_at,
            status=status.value,
            automation=automation,
            plan=plan_to_dict(plan),
            updated_at=now,
            expires_at=expires_at,
            decided_by=decided_by,
            decided_at=now if decided_by is not None else None,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    move_status = MoveStatus.PROPOSED if status == PlanStatus.PROPOSED else MoveStatus.APPROVED
    if plan.moves:
        conn.execute(
            insert(plan_moves),
            [
                {
                    "plan_id": plan_id,
                    "idx": i,
                    "vm": m.vm,
                    "source": m.source,
                    "target": m.target,
                    "reason": m.reason.value,
                    "bytes": m.cost.total_bytes,
                    "status": move_status.value,
                    "decided_by": decided_by,
                    "decided_at": now if decided_by is not None else None,
                }
                for i, m in enumerate(plan.moves)
            ],
        )
    return int(plan_id)


def get(conn: Connection, plan_id: int, for_update: bool = False) -> PlanRow:
    q = select(plans).where(plans.c.id == plan_id)
    row = conn.execute(q.with_for_update() if for_update else q).mappings().first()
    if row is None:
        raise NotFound(f"plan {plan_id} does not exist", ErrorCode.PLAN_NOT_FOUND)
    return _plans(conn, [row])[0]


def find(conn: Connection, status: PlanStatus | None, limit: int | None) -> tuple[PlanRow, ...]:
    """Newest first."""
    q = select(plans).order_by(plans.c.id.desc())
    if status is not None:
        q = q.where(plans.c.status == status.value)
    if limit is not None:
        q = q.limit(limit)
    return _plans(conn, list(conn.execute(q).mappings()))


def with_approved_moves(conn: Connection) -> tuple[PlanRow, ...]:
    """Approved or proposed plans holding approved moves nobody started yet, oldest first."""
    ids = (
        select(plan_moves.c.plan_id)
        .where(plan_moves.c.status == MoveStatus.APPROVED.value, plan_moves.c.migration_id.is_(None))
        .distinct()
    )
    live = (PlanStatus.APPROVED.value, PlanStatus.PROPOSED.value)
    q = select(plans).where(plans.c.id.in_(ids), plans.c.status.in_(live)).order_by(plans.c.id)
    return _plans(conn, list(conn.execute(q).mappings()))


def decide(conn: Connection, plan_id: int, approve: bool, actor: str, now: float) -> PlanRow:
    """Approve or reject a plan and its undecided moves (a move rejected on its own stays rejected)."""
    plan = get(conn, plan_id, for_update=True)
    new = PlanStatus.APPROVED if approve else PlanStatus.REJECTED
    _check_decidable(plan, new, now)
    if plan.status != new:
        conn.execute(
            update(plans)
            .where(plans.c.id == plan_id)
            .values(status=new.value, decided_by=actor, decided_at=now, updated_at=now)
        )
        moves_from = [MoveStatus.PROPOSED.value] + ([] if approve else [MoveStatus.APPROVED.value])
        conn.execute(
            update(plan_moves)
            .where(plan_moves.c.plan_id == plan_id, plan_moves.c.status.in_(moves_from))
            .values(status=MoveStatus.APPROVED.value if approve else MoveStatus.REJECTED.value)
            .values(decided_by=actor, decided_at=now)
        )
    detail = {"from": plan.status.value, "to": new.value}
    audit.add(conn, actor, f"plan.{'approve' if approve else 'reject'}", f"plan/{plan_id}", now, detail)
    return get(conn, plan_id)


def decide_move(
    conn: Connection, plan_id: int, index: int, approve: bool, actor: str, now: float
) -> PlanMoveRow:
    plan = get(conn, plan_id, for_update=True)
    move = _move(plan, index)
    new = MoveStatus.APPROVED if approve else MoveStatus.REJECTED
    _check_decidable(plan, None, now)
    if move.status not in (MoveStatus.PROPOSED, MoveStatus.APPROVED):
        raise Conflict(
            f"plan {plan_id} move {index} is {move.status.value}; it can no longer be decided",
            ErrorCode.MOVE_CLOSED,
        )
    if move.status != new:
        conn.execute(
            update(plan_moves)
            .where(plan_moves.c.plan_id == plan_id, plan_moves.c.idx == index)
            .values(status=new.value, decided_by=actor, decided_at=now)
        )
    action = f"move.{'approve' if approve else 'reject'}"
    detail = {"vm": move.vm, "from": move.status.value, "to": new.value}
    audit.add(conn, actor, action, f"plan/{plan_id}/move/{index}", now, detail)
    return _move(get(conn, plan_id), index)


def set_status(conn: Connection, plan_id: int, status: PlanStatus, now: float) -> PlanRow:
    """The service's own transitions (executing, done); no audit entry, no checks beyond existence."""
    get(conn, plan_id, for_update=True)
    conn.execute(update(plans).where(plans.c.id == plan_id).values(status=status.value, updated_at=now))
    return get(conn, plan_id)


def set_move_status(
    conn: Connection, plan_id: int, index: int, status: MoveStatus, migration_id: str | None
) -> PlanMoveRow:
    _move(get(conn, plan_id, for_update=True), index)
    values: dict[str, Any] = {"status": status.value}
    if migration_id is not None:
        values["migration_id"] = migration_id
    conn.execute(
        update(plan_moves).where(plan_moves.c.plan_id == plan_id, plan_moves.c.idx == index).values(**values)
    )
    return _move(get(conn, plan_id), index)


def follow(conn: Connection, migration_id: str, status: MoveStatus) -> int:
    """Set the status of the plan move that started ``migration_id`` (while it is ``started``)."""
    done = conn.execute(
        update(plan_moves)
        .where(plan_moves.c.migration_id == migration_id, plan_moves.c.status == MoveStatus.STARTED.value)
        .values(status=status.value)
    )
    return int(done.rowcount)


def refresh(conn: Connection, plan_id: int, now: float, expires_at: float) -> None:
    """The planner proposed plan ``plan_id`` again: it stays current until ``expires_at``."""
    conn.execute(
        update(plans)
        .where(plans.c.id == plan_id, plans.c.status == PlanStatus.PROPOSED.value)
        .values(updated_at=now, expires_at=expires_at)
    )


def expire(conn: Connection, now: float) -> tuple[int, ...]:
    """Mark proposals whose time ran out ``expired``; their ids."""
    stmt = (
        update(plans)
        .where(plans.c.status == PlanStatus.PROPOSED.value, plans.c.expires_at <= now)
        .values(status=PlanStatus.EXPIRED.value, updated_at=now)
        .returning(plans.c.id)
    )
    return tuple(sorted(int(i) for i in conn.execute(stmt).scalars()))


def withdraw_drain_moves(conn: Connection, host: str, actor: str, now: float) -> int:
    """Undrain: drain moves off ``host`` that were never handed to the executor become ``withdrawn``."""
    undecided = (MoveStatus.PROPOSED.value, MoveStatus.APPROVED.value)
    done = conn.execute(
        update(plan_moves)
        .where(
            plan_moves.c.source == host,
            plan_moves.c.reason == Reason.DRAIN.value,
            plan_moves.c.status.in_(undecided),
            plan_moves.c.migration_id.is_(None),
        )
        .values(status=MoveStatus.WITHDRAWN.value, decided_by=actor, decided_at=now)
    )
    return int(done.rowcount)


def supersede_stale(conn: Connection, now: float, keep: int | None) -> tuple[int, ...]:
    """Mark every proposed plan except ``keep`` (default: the newest plan) superseded; their ids."""
    if keep is None:
        keep = conn.execute(select(func.max(plans.c.id))).scalar_one_or_none()
    stmt = (
        update(plans)
        .where(plans.c.status == PlanStatus.PROPOSED.value, plans.c.id != (keep if keep is not None else -1))
        .values(status=PlanStatus.SUPERSEDED.value, updated_at=now)
        .returning(plans.c.id)
    )
    return tuple(sorted(int(i) for i in conn.execute(stmt).scalars()))


def _check_decidable(plan: PlanRow, new: PlanStatus | None, now: float) -> None:
    if plan.status not in _DECIDABLE and plan.status != new:
        raise Conflict(
            f"plan {plan.id} is {plan.status.value}; it can no longer be approved or rejected",
            ErrorCode.PLAN_CLOSED,
        )
    if plan.status == PlanStatus.PROPOSED and plan.expires_at is not None and now >= plan.expires_at:
        raise Conflict(
            f"plan {plan.id} expired: the planner has not proposed it since {plan.updated_at:.0f}; "
            "approve the current proposal instead (`balancer plans --status proposed`)",
            ErrorCode.PLAN_EXPIRED,
        )


def _move(plan: PlanRow, index: int) -> PlanMoveRow:
    for m in plan.moves:
        if m.index == index:
            return m
    raise NotFound(f"plan {plan.id} has no move {index} (it has {len(plan.moves)})", ErrorCode.MOVE_NOT_FOUND)


def _plans(conn: Connection, rows: Iterable[RowMapping]) -> tuple[PlanRow, ...]:
    rows = list(rows)
    ids = [r["id"] for r in rows]
    moves: dict[int, list[PlanMoveRow]] = {i: [] for i in ids}
    if ids:
        q = select(plan_moves).where(plan_moves.c.plan_id.in_(ids)).order_by(plan_moves.c.idx)
        for m in conn.execute(q).mappings():
            moves[m["plan_id"]].append(_move_row(m))
    return tuple(_plan_row(r, tuple(moves[r["id"]])) for r in rows)


def _plan_row(r: RowMapping, moves: tuple[PlanMoveRow, ...]) -> PlanRow:
    if r["automation"] not in _AUTOMATIONS:
        raise StoreError(f"plans.automation: stored value {r['automation']!r} is not known")
    try:
        plan = plan_from_dict(r["plan"])
    except ValueError as exc:  # pydantic.ValidationError
        raise StoreError(f"plan {r['id']}: the stored plan is unreadable: {exc}") from exc
    return PlanRow(
        id=r["id"],
        created_at=r["created_at"],
        status=decode(PlanStatus, r["status"], "plans.status"),
        automation=r["automation"],
        plan=plan,
        moves=moves,
        updated_at=r["updated_at"],
        decided_by=r["decided_by"],
        decided_at=r["decided_at"],
        expires_at=r["expires_at"],
    )


def _move_row(m: RowMapping) -> PlanMoveRow:
    return PlanMoveRow(
        plan_id=m["plan_id"],
        index=m["idx"],
        vm=m["vm"],
        source=m["source"],
        target=m["target"],
        reason=decode(Reason, m["reason"], "plan_moves.reason"),
        bytes=m["bytes"],
        status=decode(MoveStatus, m["status"], "plan_moves.status"),
        decided_by=m["decided_by"],
        decided_at=m["decided_at"],
        migration_id=m["migration_id"],
    )
