"""What operators do to drains, plans and migrations, shared by the API routes and the CLI's store fallback.

Each function validates its input against the config first (raising InputProblem, which names the field,
the value and what is allowed), then makes one store call, which is one transaction that also writes
the audit entry. Unknown ids raise the store's NotFound, contradictions its Conflict.
"""

from __future__ import annotations

from typing import Any

from balancer.api import views
from balancer.api.schemas import (
    DrainCreate,
    DrainOut,
    MigrationCreate,
    MigrationOut,
    MoveOut,
    PlanOut,
    PlanSummary,
)
from balancer.config import Config
from balancer.errors import ConfigError, Conflict, ErrorCode, NotFound, NotReady
from balancer.model import MoveState, Snapshot
from balancer.store import Store
from balancer.store.records import DrainState, PlanStatus


class InputProblem(ConfigError):
    """A request field is invalid (422 ``invalid_input``): which field, the value, what is allowed."""

    code = ErrorCode.INVALID_INPUT

    def __init__(self, field: str, value: Any, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__([f"{field}: {value!r} {message}"], "request")


def known_hosts(cfg: Config) -> str:
    return ", ".join(h.name for h in cfg.hosts) or "(none: config.yaml lists no hosts)"


def check_host(cfg: Config, host: str, field: str = "host") -> str:
    """``host`` if the config lists it, else InputProblem naming the field and the known hosts."""
    if any(h.name == host for h in cfg.hosts):
        return host
    raise InputProblem(field, host, f"is not a configured host; known: {known_hosts(cfg)}")


def host_in_path(cfg: Config, host: str) -> str:
    """Like check_host, for a path part: an unknown host is a 404."""
    if any(h.name == host for h in cfg.hosts):
        return host
    raise NotFound(
        f"host {host!r} is not a configured host; known: {known_hosts(cfg)}", ErrorCode.HOST_NOT_FOUND
    )


def resolve_migration(cfg: Config, snap: Snapshot | None, req: MigrationCreate) -> str:
    """Check an operator's migration against the config and the last collection; its source host.

    InputProblem (422) names the field of an unknown target or source host; NotFound (404) a VM the
    last collection did not see (unless ``source`` is given); Conflict (409) a target where the VM
    runs already; NotReady (503) no completed collection to find the VM in.
    """
    check_host(cfg, req.target, "target")
    source = req.source
    if source is None:
        if snap is None:
            raise NotReady(f"no collection has completed yet, so where {req.vm} runs is unknown; pass source")
        source = next((v.host for v in snap.vms if v.name == req.vm), None)
        if source is None:
            raise NotFound(
                f"vm {req.vm!r} is not a running VM of the last collection on any host",
                ErrorCode.VM_NOT_FOUND,
            )
    check_host(cfg, source, "source")
    if source == req.target:
        raise Conflict(f"{req.vm} runs on {req.target} already", ErrorCode.ALREADY_THERE)
    return source


# --------------------------------------------------------------------------- drains
def create_drain(
    cfg: Config, store: Store, req: DrainCreate, actor: str, now: float
) -> tuple[DrainOut, bool]:
    """Open a drain (or return the open one); the store audits it in the same transaction."""
    check_host(cfg, req.host)
    deadline = now + req.deadline_seconds if req.deadline_seconds is not None else None
    drain, created = store.create_drain(req.host, actor, now, deadline=deadline, note=req.note)
    return views.drain(drain, now), created


def drain_of(cfg: Config, store: Store, host: str, now: float) -> DrainOut:
    """The open drain of ``host``, else its latest one."""
    host_in_path(cfg, host)
    found = store.drains(state=DrainState.OPEN, host=host) or store.drains(host=host, limit=1)
    if not found:
        raise NotFound(f"host {host!r} has never been drained", ErrorCode.DRAIN_NOT_FOUND)
    return views.drain(found[0], now)


def cancel_drain(cfg: Config, store: Store, host: str, actor: str, now: float) -> DrainOut:
    """Undrain ``host``: cancel its open drain, or put it back in service after a drain that finished
    (the drain becomes ``released``); NotFound when it has neither."""
    host_in_path(cfg, host)
    found = store.drains(state=DrainState.OPEN, host=host)
    if found:
        return views.drain(store.close_drain(found[0].id, DrainState.CANCELLED, actor, now), now)
    latest = store.drains(host=host, limit=1)
    if latest and latest[0].state == DrainState.DONE:
        return views.drain(store.close_drain(latest[0].id, DrainState.RELEASED, actor, now), now)
    raise NotFound(
        f"host {host!r} has no open drain and is not held in maintenance by a finished one",
        ErrorCode.NOT_DRAINED,
    )


def list_drains(
    cfg: Config, store: Store, now: float, state: DrainState | None, host: str | None, limit: int
) -> list[DrainOut]:
    if host is not None:
        check_host(cfg, host)
    return [views.drain(d, now) for d in store.drains(state=state, host=host, limit=limit)]


# --------------------------------------------------------------------------- plans
def list_plans(store: Store, status: PlanStatus | None, limit: int) -> list[PlanSummary]:
    return [views.plan_summary(p) for p in store.plans(status=status, limit=limit)]


def get_plan(store: Store, plan_id: int) -> PlanOut:
    return views.plan(store.get_plan(plan_id))


def decide_plan(store: Store, plan_id: int, approve: bool, actor: str, now: float) -> PlanOut:
    row = store.approve_plan(plan_id, actor, now) if approve else store.reject_plan(plan_id, actor, now)
    return views.plan(row)


def decide_move(store: Store, plan_id: int, index: int, approve: bool, actor: str, now: float) -> MoveOut:
    if approve:
        store.approve_move(plan_id, index, actor, now)
    else:
        store.reject_move(plan_id, index, actor, now)
    row = store.get_plan(plan_id)
    return views.move(row, next(m for m in row.moves if m.index == index))


# --------------------------------------------------------------------------- migrations
def list_migrations(store: Store, state: MoveState | None, vm: str | None, limit: int) -> list[MigrationOut]:
    """Newest first. A state filter on an unfinished state reads only the unfinished records."""
    if state is None:
        records = store.records(vm=vm, limit=limit)
    else:
        pool = store.unfinished_records()[::-1] if not state.final else store.records(vm=vm)
        records = tuple(r for r in pool if r.state == state and (vm is None or r.vm == vm))[:limit]
    return [views.migration(r) for r in records]


def get_migration(store: Store, id_or_prefix: str) -> MigrationOut:
    """One record by its id or a unique prefix of it (journal.resolve)."""
    return views.migration(store.resolve_record(id_or_prefix))
