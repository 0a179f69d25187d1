"""`balancer migrate VM --to HOST`: one operator-requested live block migration, with a progress line.

It goes through the same admission, pre-checks, target provisioning, progress polling and journal
as the service's moves. Exit codes: 0 verified success, 1 failed/aborted/skipped or needs attention,
2 bad input (unknown host or VM, bad config), 3 a host's libvirtd cannot be reached.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from balancer.cli.common import EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE, ConfigOption, fail, load_config
from balancer.config import Config
from balancer.errors import MigrationError
from balancer.executor.args import ExecutorArgs
from balancer.executor.events import Event, Note, OutcomeStatus, Progress, StateChanged, Waiting
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.hypervisor import Hypervisor, libvirt_factory
from balancer.executor.journal import JournalStore
from balancer.executor.runner import Runner
from balancer.model import Move, MoveCost
from balancer.reasons import Reason

MIB = 1 << 20
UNREACHABLE = {Reason.SOURCE_DOWN, Reason.TARGET_DOWN}
BAD_INPUT = {Reason.TARGET_UNKNOWN, Reason.VM_NOT_FOUND, Reason.SAME_HOST}


def endpoints(cfg: Config) -> dict[str, MigrationEndpoint]:
    """Host endpoints from config: ``migration_uri`` defaults to the control ``uri``."""
    return {h.name: MigrationEndpoint(h.name, h.uri, h.migration_uri or h.uri) for h in cfg.hosts}


def find_vm(vm: str, names: list[str], hypervisors: dict[str, Hypervisor]) -> str:
    """The host the VM runs on (exit 2 if none, 3 if a host could not be asked and it was not found)."""
    unreachable = []
    for name in names:
        try:
            dom = hypervisors[name].domain(vm)
        except MigrationError as exc:
            unreachable.append(f"{name}: {exc.info.message}")
            continue
        if dom is not None and dom.running:
            return name
    if unreachable:
        fail(f"error: {vm} not found; could not ask {', '.join(unreachable)}", EXIT_UNREACHABLE)
    fail(f"error: no running VM {vm!r} on any configured host", EXIT_INPUT)


def _line(p: Progress) -> Text:
    rate = p.rate_bytes_s / MIB
    left = f", {p.bytes_remaining / MIB:.0f} MiB left" if p.bytes_remaining else ""
    it = f", iteration {p.memory_iteration}" if p.memory_iteration else ""
    return Text(
        f"{p.vm} {p.source}→{p.target} [{p.phase}] {p.bytes_copied / MIB:.0f} MiB copied{left} "
        f"at {rate:.1f} MiB/s{it} ({p.elapsed_s:.0f} s)"
    )


def register(app: typer.Typer) -> None:
    """Add `migrate` to the top-level app."""

    @app.command("migrate")
    def migrate(
        vm: str = typer.Argument(..., help="Domain name."),
        to: str = typer.Option(..., "--to", help="Target host (a configured host name)."),
        source: str | None = typer.Option(
            None, "--from", help="Source host (default: found by asking each)."
        ),
        bandwidth: int | None = typer.Option(
            None, "--bandwidth", min=1, help="Cap in MiB/s (default: limits)."
        ),
        full_copy: bool = typer.Option(False, "--full-copy", help="Copy whole disks (NON_SHARED_DISK)."),
        config: Path | None = ConfigOption,
    ) -> None:
        """Live-migrate VM to another host, copying its local disks; exit 0 only on a verified success."""
        cfg = load_config(config)
        eps = endpoints(cfg)
        for role, host in (("--to", to), ("--from", source)):
            if host is not None and host not in eps:
                fail(
                    f"error: {role} {host!r} is not a configured host ({', '.join(eps) or 'none'})",
                    EXIT_INPUT,
                )
        factory = libvirt_factory(eps)
        src = source or find_vm(vm, [h for h in eps if h != to], {h: factory(h) for h in eps})
        args = cfg.executor.model_copy(update={"copy_mode": "full"}) if full_copy else cfg.executor
        from balancer.store import Store

        store = Store.open(cfg.store.url)
        console = Console(stderr=True)
        try:
            code = _run(
                Move(vm, src, to, Reason.MANUAL, MoveCost(0, 0, 0, 0.0)),
                args,
                cfg,
                eps,
                store,
                bandwidth,
                console,
            )
        finally:
            store.close()
        raise typer.Exit(code)


def _run(
    move: Move,
    args: ExecutorArgs,
    cfg: Config,
    eps: dict[str, MigrationEndpoint],
    store: JournalStore,
    bandwidth: int | None,
    console: Console,
) -> int:
    with Live(Text(f"{move.vm}: queued"), console=console, refresh_per_second=4, transient=True) as live:

        def sink(event: Event) -> None:
            if isinstance(event, Progress):
                live.update(_line(event))
            elif isinstance(event, StateChanged):
                live.update(Text(f"{move.vm} {move.source}→{move.target} [{event.record.state.value}]"))
            elif isinstance(event, Waiting):
                live.update(Text(f"{move.vm}: waiting ({event.reason.value}: {event.detail})"))
            elif isinstance(event, Note):
                console.print(f"  {event.message}")

        runner = Runner(args, cfg.limits, libvirt_factory(eps), store, eps, sink)
        started = time.monotonic()
        (rec,) = runner.submit([move], bandwidth_mib_s=bandwidth)
        try:
            (outcome,) = runner.wait([rec.id])
        except KeyboardInterrupt:
            runner.abort(rec.id)
            ended = runner.wait([rec.id], timeout=120)
            if not ended:
                console.print(f"{move.vm}: interrupted; the migration goes on in libvirt (record {rec.id})")
                return EXIT_FAILED
            outcome = ended[0]
        runner.shutdown(0)
    r = outcome.record
    took = time.monotonic() - started
    if outcome.status == OutcomeStatus.SUCCEEDED:
        print(
            f"{move.vm}: migrated {move.source} → {move.target} in {took:.1f} s ({r.copy_mode} copy; "
            f"disk {r.disk_bytes / MIB:.0f} MiB, memory {r.memory_bytes / MIB:.0f} MiB, backing "
            f"{r.backing_bytes / MIB:.0f} MiB; downtime {r.downtime_ms or 0:.0f} ms) [record {r.id}]"
        )
        return 0
    err = f"; libvirt: {r.error_message} (code {r.error_code})" if r.error_message else ""
    print(
        f"{move.vm}: {outcome.status.value} ({outcome.reason.value}): {outcome.detail}{err} [record {r.id}]"
    )
    if outcome.reason in UNREACHABLE:
        return EXIT_UNREACHABLE
    if outcome.reason in BAD_INPUT:
        return EXIT_INPUT
    return EXIT_FAILED
