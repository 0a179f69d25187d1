"""`balancer migrate VM --to HOST`: an operator's live block migration, through the leader, with progress.

The request goes to the service (``POST /v1/migrations``; a follower names the leader and the CLI
follows): the move takes the leader's queue, admission limits, pre-checks, provisioning and journal
like every planned move, and ``balancer abort`` stops it. The CLI polls the record and draws the
leader's live progress; Ctrl-C asks the leader to abort. With ``--local`` (no service runs at all)
the move runs in this process instead, holding the leader lease for its duration so that no service
can lead meanwhile; it is refused while any instance leads.

Exit codes: 0 verified success, 1 failed/aborted/skipped or needs attention, 2 bad input (unknown host
or VM, bad config), 3 the service or a host's libvirtd cannot be reached.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from balancer.api.schemas import MigrationCreate, MigrationOut, ProgressNow
from balancer.cli.client import ApiBackend, ClientError, api_url, default_token
from balancer.cli.common import ConfigOption, fail, load_config
from balancer.cli.ops_cmd import ApiOption, LocalOption, TokenOption
from balancer.cli.outcome import report
from balancer.config import Config
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT

MIB = 1 << 20
POLL_SECONDS = 0.5
ABORT_WAIT_SECONDS = 120.0


def _line(vm: str, m: MigrationOut, p: ProgressNow | None) -> Text:
    if p is None:
        return Text(f"{vm} {m.source}→{m.target} [{m.state.value}]")
    left = f", {p.bytes_remaining / MIB:.0f} MiB left" if p.bytes_remaining else ""
    it = f", iteration {p.memory_iteration}" if p.memory_iteration else ""
    return Text(
        f"{vm} {m.source}→{m.target} [{p.phase}] {p.bytes_copied / MIB:.0f} MiB copied{left} "
        f"at {p.rate_bytes_s / MIB:.1f} MiB/s{it} ({p.elapsed_seconds:.0f} s)"
    )


def register(app: typer.Typer) -> None:
    """Add `migrate` to the top-level app."""

    @app.command("migrate")
    def migrate(
        vm: str = typer.Argument(..., help="Domain name."),
        to: str = typer.Option(..., "--to", help="Target host (a configured host name)."),
        source: str | None = typer.Option(
            None, "--from", help="Source host (default: where the service last saw it)."
        ),
        bandwidth: int | None = typer.Option(
            None, "--bandwidth", min=1, help="Cap in MiB/s (default: limits)."
        ),
        full_copy: bool = typer.Option(False, "--full-copy", help="Copy whole disks (NON_SHARED_DISK)."),
        api: str | None = ApiOption,
        token: str | None = TokenOption,
        config: Path | None = ConfigOption,
        local: bool = LocalOption,
    ) -> None:
        """Live-migrate VM to another host, copying its local disks; exit 0 only on a verified success."""
        cfg = load_config(config)
        names = [h.name for h in cfg.hosts]
        for role, host in (("--to", to), ("--from", source)):
            if host is not None and host not in names:
                fail(
                    f"error: {role} {host!r} is not a configured host ({', '.join(names) or 'none'})",
                    EXIT_INPUT,
                )
        console = Console(stderr=True)
        req = MigrationCreate(vm=vm, target=to, source=source, bandwidth_mib_s=bandwidth, full_copy=full_copy)
        if local:
            from balancer.cli.migrate_local import run_local

            raise typer.Exit(run_local(cfg, req, console))
        raise typer.Exit(_through_service(cfg, req, api, token, console))


def _through_service(
    cfg: Config, req: MigrationCreate, api: str | None, token: str | None, console: Console
) -> int:
    try:
        backend = ApiBackend(api_url(cfg, api), token if token is not None else default_token(cfg))
    except ClientError as exc:
        fail(f"error: {exc}", exc.exit_code)
    try:
        started = time.monotonic()
        rec = backend.migrate(req)
        console.print(f"{req.vm}: queued on the leader {backend.where} as migration {rec.id}")
        final = _follow(backend, rec, console)
        return report(final, time.monotonic() - started)
    except ClientError as exc:
        fail(f"error: {exc}", exc.exit_code)
    finally:
        backend.close()


def _follow(backend: ApiBackend, rec: MigrationOut, console: Console) -> MigrationOut:
    """Poll the record until it is final, drawing progress; Ctrl-C asks the leader to abort it."""
    aborted_at: float | None = None
    with Live(_line(rec.vm, rec, None), console=console, refresh_per_second=4, transient=True) as live:
        while not rec.final:
            try:
                time.sleep(POLL_SECONDS)  # the polling period, not a synchronisation
                rec = backend.migration(rec.id)
                live.update(_line(rec.vm, rec, rec.progress))
            except KeyboardInterrupt:
                if aborted_at is not None:
                    console.print(f"{rec.vm}: stopped watching; the leader goes on with migration {rec.id}")
                    raise typer.Exit(EXIT_FAILED) from None
                aborted_at = time.monotonic()
                out = backend.abort(rec.id)
                console.print(f"{rec.vm}: {out.message}")
            if aborted_at is not None and time.monotonic() - aborted_at > ABORT_WAIT_SECONDS:
                console.print(
                    f"{rec.vm}: the abort did not end it within {ABORT_WAIT_SECONDS:g} s ({rec.id})"
                )
                break
    return rec
