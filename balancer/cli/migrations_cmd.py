"""`balancer migrations [show ID]` and `balancer abort ID`: the migration journal, and stopping a move.

A migration id may be given whole or by any prefix naming one record (the API resolves it); ``abort``
goes to the leader, which runs the migration. Backends, options and formatting as in ops_cmd.py.
"""

from __future__ import annotations

from pathlib import Path

import typer

from balancer.api.schemas import MigrationOut
from balancer.cli.common import ConfigOption
from balancer.cli.ops_cmd import ApiOption, LocalOption, TokenOption, _at, _backend, _bytes, _secs
from balancer.cli.output import Column, JsonOption, Output, OutputOption, chosen, print_models, table
from balancer.model import MoveState

migrations_app = typer.Typer(
    help="The migration journal; `migrations show ID` for one.", invoke_without_command=True
)
MIGRATION_COLUMNS = (
    Column("ID"),
    Column("VM"),
    Column("MOVE"),
    Column("REASON", drop=3),
    Column("STATE"),
    Column("OUTCOME"),
    Column("COPIED", drop=2, right=True),
    Column("STARTED", drop=4),
    Column("ERROR", drop=1),
    Column("FINISHED", wide=True),
    Column("COPY", wide=True),
    Column("DOWNTIME", wide=True, right=True),
    Column("PLAN", wide=True, right=True),
    Column("DRAIN", wide=True, right=True),
    Column("DETAIL", wide=True),
)


@migrations_app.callback()
def migrations(
    ctx: typer.Context,
    state: MoveState | None = typer.Option(None, "--state", help="Only migrations in this state."),
    vm: str | None = typer.Option(None, "--vm", help="Only this VM's."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Newest first, at most this many."),
    output: Output = OutputOption,
    as_json: bool = JsonOption,
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """The migration journal, newest first, with outcomes and libvirt's errors (ids in full)."""
    if ctx.invoked_subcommand is not None:
        return
    with _backend(config, api, token, local=local) as backend:
        found = backend.migrations(state, vm, limit)
    mode = chosen(output, as_json)
    if mode == Output.JSON:
        print_models(found)
        return
    table(MIGRATION_COLUMNS, [_migration_row(m) for m in found], mode, empty="no migrations")


def _migration_row(m: MigrationOut) -> tuple[object, ...]:
    return (m.id, m.vm, f"{m.source} -> {m.target}", m.reason.value, m.state.value,
            m.outcome.value if m.outcome else "-", _bytes(m.disk_bytes + m.memory_bytes + m.backing_bytes),
            _at(m.started_at), m.error.message if m.error else "-", _at(m.finished_at), m.copy_mode or "-",
            "-" if m.downtime_ms is None else f"{m.downtime_ms:.0f} ms", m.plan_id or "-",
            m.drain_id or "-", m.detail or "-")  # fmt: skip


@migrations_app.command("show")
def migrations_show(
    migration_id: str = typer.Argument(..., help="Journal id, or a prefix of it that names only one."),
    output: Output = OutputOption,
    as_json: bool = JsonOption,
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """One journal record: every field, libvirt's error and, on the leader, live progress."""
    with _backend(config, api, token, local=local) as backend:
        m = backend.migration(migration_id)
    mode = chosen(output, as_json)
    if mode == Output.JSON:
        print_models(m)
        return
    table(MIGRATION_COLUMNS, [_migration_row(m)], Output.WIDE)
    if m.progress is not None:
        pr = m.progress
        print(f"progress: {pr.phase}, {_bytes(pr.bytes_copied)} copied, {_bytes(pr.bytes_remaining)} left, "
              f"{_bytes(pr.rate_bytes_s)}/s, {_secs(pr.elapsed_seconds)} elapsed")  # fmt: skip


def abort(
    migration_id: str = typer.Argument(
        ..., help="Journal id (see `balancer migrations`), or a prefix of it that names only one."
    ),
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """Abort a queued or running migration (the leader runs it; a follower's answer is followed)."""
    with _backend(config, api, token, local=local) as backend:
        out = backend.abort(migration_id)
    print(f"{out.id}: {out.message}")


def register(app: typer.Typer) -> None:
    """Add ``migrations`` and ``abort`` to the ``balancer`` app."""
    app.add_typer(migrations_app, name="migrations")
    app.command("abort")(abort)
