"""What the API serves from: ``ApiContext``, the service's published state (``Live``) and the requests
the API may make of it (``ServiceControl``). No globals; the API never imports the service (the daemon
wires a Service in, tests a small implementation of their own).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request
from prometheus_client import CollectorRegistry

from balancer.api.schemas import MigrationCreate, ProgressNow
from balancer.config import Config
from balancer.metrics.export import Metrics
from balancer.model import MigrationRecord, PastMove, Plan, Snapshot
from balancer.store import Store


@dataclass(frozen=True)
class Live:
    """The service's view between ticks: a value, replaced whole (never changed in place).

    ``last_tick`` is on the store's clock; ``last_tick_monotonic`` on this process's monotonic clock
    (what staleness is judged by, so a wall-clock step cannot make a stuck loop look alive).
    """

    snapshot: Snapshot | None = None
    plan: Plan | None = None
    plan_id: int | None = None
    leader: bool = False
    epoch: int | None = None
    last_tick: float | None = None
    last_tick_monotonic: float | None = None
    last_error: str | None = None
    in_flight: tuple[MigrationRecord, ...] = ()  # this leader's queued, running and adopted moves
    recent: tuple[PastMove, ...] = ()  # finished moves within the cooldown/quarantine horizon


class NotLeader(Exception):
    """This instance does not lead: the request must go to ``holder`` (None: nobody leads now)."""

    def __init__(self, message: str, holder: str | None) -> None:
        super().__init__(message)
        self.holder = holder


class ServiceControl(Protocol):
    """What the API may ask of the running service."""

    def live(self) -> Live:
        """The current Live value (one attribute read: consistent within itself)."""
        ...

    def abort(self, record_id: str) -> bool:
        """Abort a move this leader queued, runs or adopted; False when it holds no such move."""
        ...

    def migrate(self, request: MigrationCreate, actor: str) -> MigrationRecord:
        """Queue an operator's migration through the leader's admission; NotLeader on a follower;
        InputProblem (422) for an unknown VM or host; Conflict when the VM is busy."""
        ...

    def progress(self, record_id: str) -> ProgressNow | None:
        """The last progress the executor reported for a running move of this leader."""
        ...

    def preview(self, drains: Collection[str]) -> Plan:
        """What the planner would do now, with ``drains`` added as if requested (nothing is stored)."""
        ...


@dataclass
class ApiContext:
    """What the API serves from; ``control`` is the service (or a test's stand-in)."""

    cfg: Config
    store: Store
    control: ServiceControl
    registry: CollectorRegistry  # /metrics serves it
    metrics: Metrics | None  # counts requests in metrics.api_requests (method, code)
    clock: Callable[[], float]

    @property
    def live(self) -> Live:
        return self.control.live()


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
