"""/v1/hosts and /v1/vms: what the last collection saw."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from balancer.api import views
from balancer.api.actions import check_host
from balancer.api.routes import R404, READ, Ctx, HostFilter, HostName, Reader, known_query
from balancer.api.schemas import ErrorOut, HostOut, VMOut
from balancer.errors import ErrorCode, NotFound, NotReady
from balancer.model import Snapshot, snapshot_to_json
from balancer.store.records import DrainState

router = APIRouter(prefix="/v1", tags=["cluster"], dependencies=[Depends(known_query)])
_NO_SNAPSHOT: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "No collection has completed yet (or the store failed)"}
}


def _snapshot(ctx: Ctx) -> Snapshot:
    snap = ctx.live.snapshot
    if snap is None:
        raise NotReady("no snapshot yet: the service has not completed a collection")
    return snap


def _open_drains(ctx: Ctx) -> dict[str, int]:
    return {d.host: d.id for d in ctx.store.drains(state=DrainState.OPEN)}


@router.get(
    "/snapshot",
    summary="The last collection as a Snapshot (docs/snapshot.md); replay with `balancer plan --snapshot`",
    response_class=Response,
    responses={
        **READ,
        **_NO_SNAPSHOT,
        200: {"content": {"application/json": {"schema": {"type": "object"}}}, "description": "Snapshot"},
    },
)
def get_snapshot(_who: Reader, ctx: Ctx) -> Response:
    return Response(snapshot_to_json(_snapshot(ctx)), media_type="application/json")


@router.get("/hosts", summary="Hosts: state, load, VMs, disk bytes", responses=READ)
def list_hosts(_who: Reader, ctx: Ctx) -> list[HostOut]:
    """Every configured host; `state` is `unknown` until the service has collected once."""
    return views.hosts([h.name for h in ctx.cfg.hosts], ctx.live.snapshot, _open_drains(ctx))


@router.get("/hosts/{name}", summary="One host", responses={**READ, **R404})
def get_host(_who: Reader, ctx: Ctx, name: HostName) -> HostOut:
    snap = ctx.live.snapshot
    for h in views.hosts([c.name for c in ctx.cfg.hosts], snap, _open_drains(ctx)):
        if h.name == name:
            return h
    known = ", ".join(c.name for c in ctx.cfg.hosts)
    raise NotFound(f"host {name!r} is not a configured host; known: {known}", ErrorCode.HOST_NOT_FOUND)


def _holds(ctx: Ctx) -> views.Holds:
    live, p = ctx.live, ctx.cfg.policy
    return views.Holds.of(live.recent, live.in_flight, p.cooldown_minutes, p.quarantine_minutes)


@router.get(
    "/vms",
    summary="VMs, optionally of one host, with what holds them (cooldown, quarantine, a migration)",
    responses={**READ, **_NO_SNAPSHOT},
)
def list_vms(_who: Reader, ctx: Ctx, host: HostFilter = None) -> list[VMOut]:
    if host is not None:
        check_host(ctx.cfg, host)
    snap, holds, now = _snapshot(ctx), _holds(ctx), ctx.clock()
    return [views.vm(v, holds, now) for v in snap.vms if host is None or v.host == host]


@router.get("/vms/{name}", summary="One VM", responses={**READ, **R404, **_NO_SNAPSHOT})
def get_vm(_who: Reader, ctx: Ctx, name: Annotated[str, Path(min_length=1, max_length=255)]) -> VMOut:
    snap = _snapshot(ctx)
    for v in snap.vms:
        if v.name == name:
            return views.vm(v, _holds(ctx), ctx.clock())
    raise NotFound(
        f"VM {name!r} is not in the last snapshot (taken at {snap.taken_at:.0f})", ErrorCode.VM_NOT_FOUND
    )
