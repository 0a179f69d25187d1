"""/v1/plans: stored plans, their moves with reasons and costs, and the operator's approve/reject."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from balancer.api import actions
from balancer.api.actions import check_host
from balancer.api.routes import R404, R409, READ, WRITE, Ctx, Limit, PlanId, Reader, Writer, known_query
from balancer.api.schemas import MoveOut, PlanOut, PlanPreviewIn, PlanSummary
from balancer.model import Plan
from balancer.store.records import PlanStatus

router = APIRouter(prefix="/v1/plans", tags=["plans"], dependencies=[Depends(known_query)])
preview_router = APIRouter(prefix="/v1", tags=["plans"], dependencies=[Depends(known_query)])
log = logging.getLogger("balancer.api")
MoveIndex = Annotated[int, Path(ge=0, le=2**31 - 1, description="The move's index in the plan.")]


@router.get("", summary="Stored plans, newest first", responses=READ)
def list_plans(
    _who: Reader,
    ctx: Ctx,
    status: Annotated[PlanStatus | None, Query(description="Only plans in this status.")] = None,
    limit: Limit = 50,
) -> list[PlanSummary]:
    return actions.list_plans(ctx.store, status, limit)


@router.get(
    "/{plan_id}",
    summary="A plan: moves with reasons, costs, load before/after; skips",
    responses={**READ, **R404},
)
def get_plan(_who: Reader, ctx: Ctx, plan_id: PlanId) -> PlanOut:
    return actions.get_plan(ctx.store, plan_id)


def _decide(ctx: Ctx, who: Writer, plan_id: int, approve: bool) -> PlanOut:
    out = actions.decide_plan(ctx.store, plan_id, approve, who.name, ctx.clock())
    log.info(
        "event=api_plan_%s actor=%s plan=%d status=%s",
        "approve" if approve else "reject",
        who.name,
        plan_id,
        out.status.value,
    )
    return out


@router.post(
    "/{plan_id}/approve",
    summary="Approve the plan and its undecided moves",
    responses={**WRITE, **R404, **R409},
)
def approve_plan(who: Writer, ctx: Ctx, plan_id: PlanId) -> PlanOut:
    return _decide(ctx, who, plan_id, True)


@router.post(
    "/{plan_id}/reject",
    summary="Reject the plan and its moves that have not started",
    responses={**WRITE, **R404, **R409},
)
def reject_plan(who: Writer, ctx: Ctx, plan_id: PlanId) -> PlanOut:
    return _decide(ctx, who, plan_id, False)


def _decide_move(ctx: Ctx, who: Writer, plan_id: int, index: int, approve: bool) -> MoveOut:
    out = actions.decide_move(ctx.store, plan_id, index, approve, who.name, ctx.clock())
    log.info(
        "event=api_move_%s actor=%s plan=%d move=%d vm=%s",
        "approve" if approve else "reject",
        who.name,
        plan_id,
        index,
        out.vm,
    )
    return out


@router.post(
    "/{plan_id}/moves/{index}/approve", summary="Approve one move", responses={**WRITE, **R404, **R409}
)
def approve_move(who: Writer, ctx: Ctx, plan_id: PlanId, index: MoveIndex) -> MoveOut:
    return _decide_move(ctx, who, plan_id, index, True)


@router.post(
    "/{plan_id}/moves/{index}/reject", summary="Reject one move", responses={**WRITE, **R404, **R409}
)
def reject_move(who: Writer, ctx: Ctx, plan_id: PlanId, index: MoveIndex) -> MoveOut:
    return _decide_move(ctx, who, plan_id, index, False)


@preview_router.post(
    "/preview",
    summary="What the planner would do now on the service's view (nothing is stored or started)",
    responses=READ,
)
def preview_plan(_who: Reader, ctx: Ctx, body: PlanPreviewIn) -> Plan:
    """The service's snapshot and planner state (maintenance, drains, moves in flight, cooldowns,
    quarantines), plus the drains of ``drain`` as if they were requested."""
    for i, host in enumerate(body.drain):
        check_host(ctx.cfg, host, f"drain[{i}]")
    return ctx.control.preview(frozenset(body.drain))
