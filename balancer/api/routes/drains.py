"""/v1/drains: ask for a host to be emptied, watch its progress, cancel it (undrain)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from balancer.api import actions
from balancer.api.routes import (
    R404,
    R409,
    READ,
    WRITE,
    Ctx,
    HostFilter,
    HostName,
    Limit,
    Reader,
    Writer,
    known_query,
)
from balancer.api.schemas import DrainCreate, DrainOut
from balancer.store.records import DrainState

router = APIRouter(prefix="/v1/drains", tags=["drains"], dependencies=[Depends(known_query)])
log = logging.getLogger("balancer.api")


@router.get("", summary="Drain requests with progress, newest first", responses=READ)
def list_drains(
    _who: Reader,
    ctx: Ctx,
    state: Annotated[DrainState | None, Query(description="Only drains in this state.")] = None,
    host: HostFilter = None,
    limit: Limit = 50,
) -> list[DrainOut]:
    return actions.list_drains(ctx.cfg, ctx.store, ctx.clock(), state, host, limit)


@router.post(
    "",
    status_code=201,
    summary="Drain a host (idempotent)",
    responses={**WRITE, 200: {"model": DrainOut, "description": "The host's open drain already existed"}},
)
def create_drain(who: Writer, ctx: Ctx, body: DrainCreate, response: Response) -> DrainOut:
    """Opens a drain (201), or returns the open drain of the host (200); audited with the token's name."""
    out, created = actions.create_drain(ctx.cfg, ctx.store, body, who.name, ctx.clock())
    response.status_code = 201 if created else 200
    log.info("event=api_drain_create actor=%s host=%s id=%d created=%s", who.name, out.host, out.id, created)
    return out


@router.get("/{host}", summary="The open drain of a host, else its latest", responses={**READ, **R404})
def get_drain(_who: Reader, ctx: Ctx, host: HostName) -> DrainOut:
    return actions.drain_of(ctx.cfg, ctx.store, host, ctx.clock())


@router.delete(
    "/{host}", summary="Cancel the open drain of a host (undrain)", responses={**WRITE, **R404, **R409}
)
def cancel_drain(who: Writer, ctx: Ctx, host: HostName) -> DrainOut:
    out = actions.cancel_drain(ctx.cfg, ctx.store, host, who.name, ctx.clock())
    log.info("event=api_drain_cancel actor=%s host=%s id=%d", who.name, host, out.id)
    return out
