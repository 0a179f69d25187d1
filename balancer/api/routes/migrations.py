"""/v1/migrations: the journal, and aborting a running migration (only where it runs: the leader)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from balancer.api import actions, views
from balancer.api.errors import LeaderElsewhere
from balancer.api.routes import R404, READ, WRITE, Ctx, Limit, Reader, Writer, known_query
from balancer.api.schemas import PRINTABLE, AbortOut, LeaderConflictOut, MigrationOut
from balancer.errors import Conflict
from balancer.model import MoveState

router = APIRouter(prefix="/v1/migrations", tags=["migrations"], dependencies=[Depends(known_query)])
log = logging.getLogger("balancer.api")
MigrationId = Annotated[str, Path(min_length=1, max_length=128, pattern=PRINTABLE, description="Journal id.")]


@router.get("", summary="Journal records, newest first", responses=READ)
def list_migrations(
    _who: Reader,
    ctx: Ctx,
    state: Annotated[MoveState | None, Query(description="Only records in this state.")] = None,
    vm: Annotated[str | None, Query(min_length=1, max_length=255, pattern=PRINTABLE)] = None,
    limit: Limit = 100,
) -> list[MigrationOut]:
    return actions.list_migrations(ctx.store, state, vm, limit)


@router.get("/{migration_id}", summary="One journal record", responses={**READ, **R404})
def get_migration(_who: Reader, ctx: Ctx, migration_id: MigrationId) -> MigrationOut:
    return actions.get_migration(ctx.store, migration_id)


@router.post(
    "/{migration_id}/abort",
    status_code=202,
    summary="Abort a queued or running migration",
    responses={
        **WRITE,
        **R404,
        409: {
            "model": LeaderConflictOut,
            "description": "Already finished, or running elsewhere: retry at `leader_url`",
        },
    },
)
def abort_migration(who: Writer, ctx: Ctx, migration_id: MigrationId) -> AbortOut:
    """Accepted means the executor was asked: the record turns `aborted` once libvirt cancelled the job."""
    now = ctx.clock()
    rec = ctx.store.get_record(migration_id)
    if rec.state.final:
        raise Conflict(f"migration {migration_id} is already {rec.state.value}; there is nothing to abort")
    if ctx.abort(migration_id):
        detail = {"vm": rec.vm, "source": rec.source, "target": rec.target, "state": rec.state.value}
        ctx.store.audit(who.name, "migration.abort", f"migration/{migration_id}", now, detail)
        log.info("event=api_migration_abort actor=%s id=%s vm=%s", who.name, migration_id, rec.vm)
        return AbortOut(
            id=migration_id,
            message=f"abort of {rec.vm} ({rec.source} -> {rec.target}) requested",
            migration=views.migration(rec),
        )
    if ctx.live.leader:
        raise LeaderElsewhere(
            f"migration {migration_id} is journaled as {rec.state.value} but this leader's executor "
            "does not run it (left by a crash or a previous leader); recovery reconciles it",
            None,
        )
    lease = ctx.store.current_leader(now)
    if lease is None:
        raise LeaderElsewhere(
            f"migration {migration_id} is not running in this process and no instance holds the "
            "leader lease; retry once a leader is elected (recovery reconciles the record)",
            None,
        )
    where = lease.holder.rpartition("@")[2] if "@" in lease.holder else lease.holder
    raise LeaderElsewhere(
        f"migration {migration_id} is not running in this process; the leader {lease.holder} runs it: "
        f"retry there ({where})",
        lease.holder,
    )
