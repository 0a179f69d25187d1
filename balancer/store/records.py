"""What the store returns: small frozen dataclasses and the enums of their states.

Instants are epoch seconds (float), sizes are bytes. The migration journal and the planner's
history use the model's own ``MigrationRecord`` and ``PastMove``; this module holds only what
the model has no type for (drain requests, stored plans and their moves, audit entries, the lease).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter

from balancer.errors import StoreError
from balancer.model import Plan
from balancer.reasons import Reason

Automation = Literal["off", "recommend", "auto"]


class DrainState(StrEnum):
    """A drain request is open until the host is empty (done) or an operator cancels it.

    A done drain keeps its host in maintenance (nothing is placed there) until an operator puts
    the host back in service (undrain), which marks the drain released.
    """

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"
    RELEASED = "released"


class PlanStatus(StrEnum):
    PROPOSED = "proposed"  # waiting for an operator (automation "recommend")
    APPROVED = "approved"  # an operator approved it; the executor may start its moves
    REJECTED = "rejected"
    EXECUTING = "executing"
    DONE = "done"
    SUPERSEDED = "superseded"  # a newer plan replaced it before anyone decided
    EXPIRED = "expired"  # the planner stopped proposing it before anyone decided (service.proposal_ttl)


class MoveStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    STARTED = "started"  # the executor took it; ``migration_id`` names the journal record
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a pre-check found the move no longer applies
    REFUSED = "refused"  # a pre-check refused it (target full, down...): nothing was tried
    WITHDRAWN = "withdrawn"  # never started: its drain was cancelled (undrain) before it ran


@dataclass(frozen=True)
class Blocker:
    """A VM that keeps a drain from finishing, and why (the planner's or executor's reason)."""

    vm: str
    reason: Reason
    detail: str = ""


@dataclass(frozen=True)
class DrainProgress:
    """The last progress the service reported for a drain."""

    vms_remaining: int
    bytes_remaining: int
    in_flight: tuple[str, ...] = ()  # VMs migrating off the host now
    done: int = 0  # VMs moved off since the request
    failed: int = 0  # migrations that failed since the request
    eta_seconds: float | None = None  # None while nothing is known to move
    blockers: tuple[Blocker, ...] = ()


@dataclass(frozen=True)
class DrainRequest:
    """An operator's request to empty ``host``; at most one is open per host."""

    id: int
    host: str
    state: DrainState
    requested_by: str
    created_at: float
    updated_at: float
    deadline: float | None = None
    closed_at: float | None = None
    closed_by: str | None = None
    note: str = ""
    progress: DrainProgress | None = None  # None until the service reports once

    @property
    def blocked(self) -> bool:
        """Open, nothing migrating, and VMs left that cannot move: the drain waits on an operator."""
        p = self.progress
        return self.state == DrainState.OPEN and p is not None and bool(p.blockers) and not p.in_flight


@dataclass(frozen=True)
class PlanMoveRow:
    """One move of a stored plan, with its approval/execution status."""

    plan_id: int
    index: int  # position in ``Plan.moves``
    vm: str
    source: str
    target: str
    reason: Reason
    bytes: int  # predicted bytes to copy (``MoveCost.total_bytes``)
    status: MoveStatus
    decided_by: str | None = None
    decided_at: float | None = None
    migration_id: str | None = None


@dataclass(frozen=True)
class PlanRow:
    """A stored plan: the Plan value itself plus what happened to it."""

    id: int
    created_at: float
    status: PlanStatus
    automation: Automation
    plan: Plan
    moves: tuple[PlanMoveRow, ...]
    updated_at: float
    decided_by: str | None = None
    decided_at: float | None = None
    expires_at: float | None = None  # a proposal not re-proposed or approved by then is stale


@dataclass(frozen=True)
class AuditEntry:
    """Who asked for what: ``actor`` is an API token name or a CLI user."""

    id: int
    at: float
    actor: str
    action: str  # e.g. "drain.create", "plan.approve"
    subject: str  # e.g. "drain/7", "plan/3/move/2"
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class Lease:
    """Who leads, in which term (``epoch``), until when (``expires_at``, on the store's clock)."""

    name: str
    holder: str
    epoch: int
    expires_at: float


@dataclass(frozen=True)
class Fence:
    """A leader's credentials for leader-only writes: the store refuses them unless this holder still
    holds lease ``name`` at ``epoch`` and it has not expired by the store's clock (``LeaseLost``)."""

    holder: str
    epoch: int
    name: str = "balancer"


@dataclass(frozen=True)
class LeaseGrant:
    """A successful acquire or renew: the term held, and the store's clock when the write ran."""

    epoch: int
    store_now: float
    expires_at: float


# --------------------------------------------------------------------------- decoding
_PROGRESS: TypeAdapter[DrainProgress] = TypeAdapter(DrainProgress)
E = TypeVar("E", bound=StrEnum)


def progress_to_json(progress: DrainProgress) -> dict[str, Any]:
    return _PROGRESS.dump_python(progress, mode="json")  # type: ignore[no-any-return]


def progress_from_json(data: Any) -> DrainProgress:
    try:
        return _PROGRESS.validate_python(data)
    except ValueError as exc:  # pydantic.ValidationError
        raise StoreError(f"stored drain progress is unreadable: {exc}") from exc


def decode(kind: type[E], value: Any, column: str) -> E:
    """A stored enum value, or StoreError naming the column (a newer balancer wrote it, or a hand edit)."""
    try:
        return kind(value)
    except ValueError as exc:
        raise StoreError(f"{column}: stored value {value!r} is not a known {kind.__name__}") from exc
