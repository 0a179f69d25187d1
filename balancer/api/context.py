"""``ApiContext``: everything the API reads or calls, passed to ``create_app`` (no globals)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from prometheus_client import CollectorRegistry

from balancer.config import Config
from balancer.metrics.export import Metrics
from balancer.store import Store

if TYPE_CHECKING:  # the service imports the API at run time; the API needs Live only as a type
    from balancer.service.core import Live


@dataclass
class ApiContext:
    """What the API serves from.

    ``live`` is read afresh by every request: the service may mutate it or assign a new one here.
    ``abort(id)`` asks this process's executor to abort a migration; False when it does not run it.
    """

    cfg: Config
    store: Store
    live: Live
    registry: CollectorRegistry  # /metrics serves it
    metrics: Metrics | None  # counts requests in metrics.api_requests (method, code)
    abort: Callable[[str], bool]
    clock: Callable[[], float] = time.time


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
