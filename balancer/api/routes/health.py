"""/healthz, /readyz and /metrics: no token needed (probes and Prometheus scrape them)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from balancer import __version__
from balancer.api.routes import Ctx
from balancer.api.schemas import Health, Readiness
from balancer.errors import StoreError

router = APIRouter(tags=["health"])
READY_INTERVALS = 3  # ready while the last tick is at most this many collection intervals old


@router.get("/healthz", summary="The process is alive")
def healthz() -> Health:
    return Health(version=__version__)


@router.get(
    "/readyz",
    summary="A tick completed recently and the store answers",
    responses={503: {"model": Readiness, "description": "Not ready; `problems` says why"}},
)
def readyz(ctx: Ctx, response: Response) -> Readiness:
    live = ctx.live
    problems = []
    window = READY_INTERVALS * ctx.cfg.collection.interval_seconds
    # On the monotonic clock: a wall-clock step can neither hide a stuck loop nor fake a stale one.
    age = time.monotonic() - live.last_tick_monotonic if live.last_tick_monotonic is not None else None
    if age is None:
        problems.append("no tick has completed yet")
    elif age > window:
        problems.append(
            f"the last tick completed {age:.0f} s ago, more than {READY_INTERVALS} x "
            f"collection.interval_seconds ({window:.0f} s)"
        )
    try:
        ctx.store.schema_version()
    except StoreError as exc:
        problems.append(f"the store does not answer: {exc}")
    if problems:
        response.status_code = 503
    return Readiness(
        ready=not problems,
        problems=problems,
        leader=live.leader,
        epoch=live.epoch,
        last_tick=live.last_tick,
        last_tick_age_seconds=age,
        last_error=live.last_error,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"}},
)
def metrics(ctx: Ctx) -> Response:
    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)
