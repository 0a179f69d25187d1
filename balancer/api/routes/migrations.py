"""/v1/migrations: the journal; an operator's migration and aborts, both done by the leader only.

Every migration goes through the leader's queue, admission and journal, whoever asks: a follower
answers POST with 409 and the leader's URL (the CLI retries there), so limits hold for every move.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from balancer.api import actions, views
from balancer.api.context import NotLeader
from balancer.api.errors import LeaderElsewhere
from balancer.api.routes import R404, R409, READ, WRITE, Ctx, Limit, Reader, Writer, known_query
from balancer.api.schemas import PRINTABLE, AbortOut, LeaderConflictOut, MigrationCreate, MigrationOut
from balancer.errors import Conflict, ErrorCode
from balancer.model import MoveState

router = APIRouter(prefix="/v1/migrations", tags=["migrations"], dependencies=[Depends(known_query)])
log = logging.getLogger("balancer.api")
# A journal id or a unique prefix of one (as `balancer migrations` shows them, or shorter). Resolved
# here, by the service, rather than by the CLI listing and matching: the CLI stays one request per
# command, the answer is the same for every client (curl included), and an ambiguous prefix is
# refused where the whole journal is visible (409 ``ambiguous_id`` naming the candidates; none is
# 404 ``migration_not_found``), not among the newest N a listing would return.
MigrationId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=PRINTABLE,
        description="Journal id, or a prefix of it that matches only one record.",
    ),
]
R409_LEADER: dict[int | str, dict[str, Any]] = {
    409: {
        "model": LeaderConflictOut,
        "description": "Not possible in this state, or not the leader: retry at `leader_url`",
    }
}


@router.get("", summary="Journal records, newest first", responses=READ)
def list_migrations(
    _who: Reader,
    ctx: Ctx,
    state: Annotated[MoveState | None, Query(description="Only records in this state.")] = None,
    vm: Annotated[str | None, Query(min_length=1, max_length=255, pattern=PRINTABLE)] = None,
    limit: Limit = 100,
) -> list[MigrationOut]:
    return actions.list_migrations(ctx.store, state, vm, limit)


@router.post(
    "",
    status_code=202,
    summary="Migrate a VM (queued through the leader's admission; poll GET /v1/migrations/{id})",
    responses={**WRITE, **R404, **R409_LEADER},
)
def create_migration(who: Writer, ctx: Ctx, body: MigrationCreate) -> MigrationOut:
    """Accepted means journaled as queued by the leader; the record says how it ends."""
    try:
        rec = ctx.control.migrate(body, who.name)
    except NotLeader as exc:
        raise LeaderElsewhere(str(exc), exc.holder) from None
    ctx.store.audit(
        who.name,
        "migration.create",
        f"migration/{rec.id}",
        ctx.clock(),
        {"vm": rec.vm, "source": rec.source, "target": rec.target, "full_copy": body.full_copy},
    )
    log.info(
        "event=api_migration_create actor=%s id=%s vm=%s source=%s target=%s",
        who.name,
        rec.id,
        rec.vm,
        rec.source,
        rec.target,
    )
    return views.migration(rec)


@router.get(
    "/{migration_id}",
    summary="One journal record (with live progress on the leader)",
    responses={**READ, **R404, **R409},
)
def get_migration(_who: Reader, ctx: Ctx, migration_id: MigrationId) -> MigrationOut:
    rec = ctx.store.resolve_record(migration_id)
    return views.migration(rec, ctx.control.progress(rec.id))


@router.post(
    "/{migration_id}/abort",
    status_code=202,
    summary="Abort a queued or running migration",
    responses={**WRITE, **R404, **R409_LEADER},
)
def abort_migration(who: Writer, ctx: Ctx, migration_id: MigrationId) -> AbortOut:
    """Accepted means the executor was asked: the record turns `aborted` once libvirt cancelled the job."""
    now = ctx.clock()
    rec = ctx.store.resolve_record(migration_id)
    migration_id = rec.id
    if rec.state.final:
        raise Conflict(
            f"migration {migration_id} is already {rec.state.value}; there is nothing to abort",
            ErrorCode.MIGRATION_FINISHED,
        )
    if ctx.control.abort(migration_id):
        detail = {"vm": rec.vm, "source": rec.source, "target": rec.target, "state": rec.state.value}
        ctx.store.audit(who.name, "migration.abort", f"migration/{migration_id}", now, detail)
        log.info("event=api_migration_abort actor=%s id=%s vm=%s", who.name, migration_id, rec.vm)
        return AbortOut(
            id=migration_id,
            message=f"abort of {rec.vm} ({rec.source} -> {rec.target}) requested",
            migration=views.migration(rec),
        )
    live = ctx.live
    if live.leader:
        raise LeaderElsewhere(
            f"migration {migration_id} is journaled as {rec.state.value} at epoch {rec.epoch}, but this "
            f"leader (epoch {live.epoch}) does not hold it; it adopts older terms' moves at its next tick",
            None,
        )
    lease = ctx.store.current_leader()
    if lease is None:
        raise LeaderElsewhere(
            f"migration {migration_id} is not running in this process and no instance holds the "
            "leader lease; retry once a leader is elected (it adopts the record)",
            None,
        )
    where = lease.holder.rpartition("@")[2] if "@" in lease.holder else lease.holder
    raise LeaderElsewhere(
        f"migration {migration_id} is not running in this process; the leader {lease.holder} runs it: "
        f"retry there ({where})",
        lease.holder,
    )
