"""Operator commands: drain, undrain, drains, plans [show], approve, reject (and, from
migrations_cmd.py, migrations [show] and abort).

They talk to the service's API (client.py); with ``--local`` (explicit, and only while no instance
leads) to the store directly. ``abort`` needs the leader, which runs the migration. Exit codes as in
cli/__init__.

Ids: plans and drains have small integer ids, always printed whole (a drain is named by its host).
A migration id (32 hex characters) may be given whole or by any prefix naming one record; the API
resolves it (routes/migrations.py says why there), and an ambiguous prefix exits 2 naming the ids.
Listings print with output.py: ``-o table|wide|json``, never cut.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from balancer.api.errors import problem_of
from balancer.api.schemas import DrainCreate, DrainOut, MoveOut, PlanSummary
from balancer.cli.client import API_ENV, TOKEN_ENV, Backend, ClientError, connect
from balancer.cli.common import ConfigOption, config_path, fail, load_config
from balancer.cli.output import Column, JsonOption, Output, OutputOption, chosen, print_models, table
from balancer.config import Config
from balancer.errors import ConfigError, ErrorCode
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT
from balancer.store.records import DrainState, PlanStatus

ApiOption = typer.Option(None, "--api", envvar=API_ENV, help="Service URL (default: http://<api.listen>).")
TokenOption = typer.Option(
    None, "--token", envvar=TOKEN_ENV, help="API token (default: config's write token)."
)
LocalOption = typer.Option(
    False,
    "--local",
    help="No service runs: act on the store (store.url) directly. Refused while any instance leads.",
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str, option: str) -> float:
    """Seconds in ``30m``, ``2h``, ``1d``, ``1h30m``; exit 2 naming the option otherwise."""
    parts = _DURATION.findall(text.strip().lower())
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower() or seconds <= 0:
        fail(
            f"{option}: {text!r} is not a duration; use a number and a unit s, m, h or d, e.g. 30m, 2h, 1d",
            EXIT_INPUT,
        )
    return seconds


def _config(path: Path | None, api: str | None) -> Config | None:
    """The config; None when there is none but --api/$BALANCER_API says where the service is."""
    if api and not config_path(path).exists():
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(exc.render(), EXIT_INPUT)


def _known_host(cfg: Config | None, host: str) -> None:
    if cfg is not None and not any(h.name == host for h in cfg.hosts):
        known = ", ".join(h.name for h in cfg.hosts) or "(none)"
        fail(f"HOST: {host!r} is not a configured host; known: {known}", EXIT_INPUT)


@contextmanager
def _backend(
    config: Path | None, api: str | None, token: str | None, host: str | None = None, local: bool = False
) -> Iterator[Backend]:
    cfg = _config(config, None if local else api)
    if host is not None:
        _known_host(cfg, host)
    try:
        backend = connect(cfg, api, token, local)
        try:
            yield backend
        finally:
            backend.close()
    except ClientError as exc:
        fail(f"error: {exc}", exc.exit_code)


# --------------------------------------------------------------------------- formatting
def _bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _secs(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _at(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _blockers(d: DrainOut) -> list[str]:
    p = d.progress
    return [f"vm {b.vm}: {b.message} ({b.reason.value})" for b in (p.blockers if p else [])]


def _progress_line(d: DrainOut) -> str:
    p = d.progress
    if p is None:
        return "waiting for the service's first report"
    moving = f", moving {', '.join(p.in_flight)}" if p.in_flight else ""
    return f"{p.vms_remaining} VMs, {_bytes(p.bytes_remaining)} left{moving}, ETA {_secs(p.eta_seconds)}"


# --------------------------------------------------------------------------- drains
def drain(
    host: str = typer.Argument(..., help="The host to empty."),
    wait: bool = typer.Option(
        False, "--wait", help="Show progress until the host is empty (exit 0) or stuck (1)."
    ),
    deadline: str | None = typer.Option(None, "--deadline", help="Should be empty within this, e.g. 2h."),
    note: str = typer.Option("", "--note", help="Why (a ticket, a person)."),
    interval: float = typer.Option(2.0, "--interval", hidden=True, help="Seconds between polls with --wait."),
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """Ask the service to move every VM off HOST (idempotent; nothing new is placed on it)."""
    if wait and local:
        fail("--wait: with --local no service runs to empty the host; drop one of them", EXIT_INPUT)
    seconds = parse_duration(deadline, "--deadline") if deadline is not None else None
    try:
        req = DrainCreate(host=host, deadline_seconds=seconds, note=note)
    except ValidationError as exc:  # e.g. a note with control characters
        options = {"host": "HOST", "deadline_seconds": "--deadline", "note": "--note"}
        problems = [problem_of(dict(e), DrainCreate) for e in exc.errors()]
        fail(
            "\n".join(f"{options.get(p.field, p.field)}: {p.value!r} {p.message}" for p in problems),
            EXIT_INPUT,
        )
    with _backend(config, api, token, host, local) as backend:
        d, created = backend.create_drain(req)
        what = "opened" if created else f"already open since {_at(d.created_at)} (by {d.requested_by})"
        print(f"{host}: drain {d.id} {what}" + (f"; deadline {_at(d.deadline)}" if d.deadline else ""))
        if local:
            print(f"{host}: written to {backend.where}; the next `balancer run` on it acts on the drain")
        if wait:
            raise typer.Exit(_wait(backend, host, interval))


def _wait(backend: Backend, host: str, interval: float) -> int:
    err = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TextColumn("{task.fields[info]}"), console=err) as bar:
        task = bar.add_task(host, total=None, info="")
        while True:
            d = backend.drain(host)
            p = d.progress
            total = (p.vms_remaining + p.done) if p else None
            bar.update(task, total=total, completed=p.done if p else 0, info=_progress_line(d))
            if d.state != DrainState.OPEN or d.blocked or d.overdue:
                break
            time.sleep(interval)
    if d.state == DrainState.DONE:
        print(f"{host}: drained ({d.progress.done if d.progress else 0} VMs moved)")
        return 0
    if d.state == DrainState.CANCELLED:
        print(f"{host}: drain {d.id} was cancelled by {d.closed_by}")
    else:
        why = "is blocked" if d.blocked else f"is past its deadline ({_at(d.deadline)})"
        print(f"{host}: drain {d.id} {why}: {_progress_line(d)}")
        for line in _blockers(d):
            print(f"  {line}")
    return EXIT_FAILED


def undrain(
    host: str = typer.Argument(..., help="The host whose drain to cancel."),
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """Cancel the open drain of HOST (its moves not started yet are withdrawn; VMs already moved stay),
    or put a drained HOST back in service."""
    with _backend(config, api, token, host, local) as backend:
        try:
            d = backend.cancel_drain(host)
        except ClientError as exc:
            if exc.error == ErrorCode.NOT_DRAINED:
                print(f"{host}: no open drain; nothing to undrain")
                return
            raise
        if d.state == DrainState.RELEASED:
            print(f"{host}: back in service (its drain {d.id} had finished)")
        else:
            print(f"{host}: drain {d.id} cancelled")


DRAIN_COLUMNS = (
    Column("HOST"),
    Column("ID", right=True),
    Column("STATE"),
    Column("BY", drop=4),
    Column("SINCE", drop=2),
    Column("VMS LEFT", right=True),
    Column("BYTES LEFT", drop=5, right=True),
    Column("IN FLIGHT", drop=6, right=True),
    Column("DONE", right=True),
    Column("FAILED", right=True),
    Column("ETA", drop=3, right=True),
    Column("DEADLINE", drop=1),
    Column("CLOSED", wide=True),
    Column("CLOSED BY", wide=True),
    Column("NOTE", wide=True),
)


def drains(
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Newest first, at most this many."),
    output: Output = OutputOption,
    as_json: bool = JsonOption,
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """Drains with progress: VMs and bytes left, in flight, done, failed, ETA, and what blocks them."""
    with _backend(config, api, token, local=local) as backend:
        found = backend.drains(limit)
    mode = chosen(output, as_json)
    if mode == Output.JSON:
        print_models(found)
        return
    rows = []
    for d in found:
        p = d.progress
        state = d.state.value + (" (blocked)" if d.blocked else "") + (" (overdue)" if d.overdue else "")
        counts = (str(p.vms_remaining), _bytes(p.bytes_remaining), str(len(p.in_flight)), str(p.done),
                  str(p.failed), _secs(p.eta_seconds)) if p else ("-",) * 6  # fmt: skip
        rows.append((d.host, d.id, state, d.requested_by, _at(d.created_at), *counts, _at(d.deadline),
                     _at(d.closed_at), d.closed_by or "-", d.note or "-"))  # fmt: skip
    table(DRAIN_COLUMNS, rows, mode, empty="no drains")
    for d in found:
        if d.state == DrainState.OPEN:
            for line in _blockers(d):
                print(f"{d.host}: blocked: {line}")


# --------------------------------------------------------------------------- plans
plans_app = typer.Typer(help="Stored plans; `plans show ID` for one.", invoke_without_command=True)


PLAN_COLUMNS = (
    Column("ID", right=True),
    Column("STATUS"),
    Column("CREATED", drop=2),
    Column("MOVES"),
    Column("BYTES", drop=3, right=True),
    Column("IMBALANCE", drop=4),
    Column("DECIDED BY", drop=1),
    Column("AUTOMATION", wide=True),
    Column("DECIDED", wide=True),
    Column("EXPIRES", wide=True),
    Column("SKIPS", wide=True, right=True),
)


@plans_app.callback()
def plans(
    ctx: typer.Context,
    status: PlanStatus | None = typer.Option(None, "--status", help="Only plans in this status."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Newest first, at most this many."),
    output: Output = OutputOption,
    as_json: bool = JsonOption,
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """List stored plans, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    with _backend(config, api, token, local=local) as backend:
        found = backend.plans(status, limit)
    mode = chosen(output, as_json)
    if mode == Output.JSON:
        print_models(found)
        return
    rows = [(p.id, p.status.value, _at(p.created_at), _counts(p), _bytes(p.predicted_bytes),
             f"{p.imbalance_before:.3f} -> {p.imbalance_after:.3f}", p.decided_by or "-", p.automation,
             _at(p.decided_at), _at(p.expires_at), p.skip_count)
            for p in found]  # fmt: skip
    table(PLAN_COLUMNS, rows, mode, empty="no plans")


def _counts(p: PlanSummary) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(p.moves_by_status.items())) or "none"


@plans_app.command("show")
def plans_show(
    plan_id: int = typer.Argument(..., help="Plan id."),
    output: Output = OutputOption,
    as_json: bool = JsonOption,
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """One plan: each move with its reason, cost and load before -> after; the skips and why."""
    with _backend(config, api, token, local=local) as backend:
        p = backend.plan(plan_id)
    mode = chosen(output, as_json)
    if mode == Output.JSON:
        print_models(p)
        return
    print(
        f"plan {p.id}: {p.status.value} ({p.automation}), created {_at(p.created_at)}, "
        f"imbalance {p.imbalance_before:.3f} -> {p.imbalance_after:.3f}, {_bytes(p.predicted_bytes)} to copy"
    )
    rows = [(m.index, m.vm, f"{m.source} -> {m.target}", m.reason.value, _bytes(m.cost.total_bytes),
             _secs(m.cost.seconds), _load(m, "source"), _load(m, "target"), m.status.value,
             m.cost.copy_mode, m.migration_id or "-", m.decided_by or "-")
            for m in p.moves]  # fmt: skip
    table(PLAN_MOVE_COLUMNS, rows, mode)
    for m in p.moves:
        if m.detail:
            print(f"  {m.index}: {m.detail}")
    for s in p.skips:
        print(f"skip {s.subject} {s.name}: {s.reason.value}" + (f": {s.detail}" if s.detail else ""))


PLAN_MOVE_COLUMNS = (
    Column("#", right=True),
    Column("VM"),
    Column("MOVE"),
    Column("REASON"),
    Column("BYTES", drop=3, right=True),
    Column("TIME", drop=4, right=True),
    Column("SOURCE LOAD", drop=2),
    Column("TARGET LOAD", drop=1),
    Column("STATUS"),
    Column("COPY", wide=True),
    Column("MIGRATION", wide=True),
    Column("DECIDED BY", wide=True),
)


def _load(m: MoveOut, side: str) -> str:
    change = m.source_load if side == "source" else m.target_load
    if change is None:
        return "-"
    return ", ".join(f"{r} {change.before[r]:.2f}->{change.after.get(r, 0.0):.2f}" for r in change.before)


def _decide(approve: bool, plan_id: int, move: int | None, api: str | None, token: str | None,
            config: Path | None, local: bool) -> None:  # fmt: skip
    verb = "approved" if approve else "rejected"
    with _backend(config, api, token, local=local) as backend:
        if move is None:
            p = backend.decide_plan(plan_id, approve)
            print(f"plan {p.id} {verb}; moves: {_counts(p)}")
        else:
            m = backend.decide_move(plan_id, move, approve)
            print(f"plan {plan_id} move {m.index} ({m.vm}: {m.source} -> {m.target}) {verb}")


def approve(
    plan_id: int = typer.Argument(..., help="Plan id."),
    move: int | None = typer.Option(None, "--move", min=0, help="Only this move (its index in the plan)."),
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """Approve a plan (its undecided moves start within a second on the leader), or one move of it."""
    _decide(True, plan_id, move, api, token, config, local)


def reject(
    plan_id: int = typer.Argument(..., help="Plan id."),
    move: int | None = typer.Option(None, "--move", min=0, help="Only this move (its index in the plan)."),
    api: str | None = ApiOption,
    token: str | None = TokenOption,
    config: Path | None = ConfigOption,
    local: bool = LocalOption,
) -> None:
    """Reject a plan (its moves that have not started), or one move of it."""
    _decide(False, plan_id, move, api, token, config, local)


def register(app: typer.Typer) -> None:
    """Add the operator commands to the ``balancer`` app."""
    for fn in (drain, undrain, drains, approve, reject):
        app.command(fn.__name__)(fn)
    app.add_typer(plans_app, name="plans")
    from balancer.cli import migrations_cmd  # it builds on this module's options and backend

    migrations_cmd.register(app)
