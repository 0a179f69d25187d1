"""`balancer migrate --local`: the move in this process, for when no service runs at all.

It holds the leader lease for as long as it runs (so no service can lead and act beside it), is
refused while any instance leads, and goes through the same Runner as the service's moves: admission,
pre-checks, provisioning, the fenced journal, with a live progress line from the executor's events.
"""

from __future__ import annotations

import getpass
import os
import socket
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from balancer.api import views
from balancer.api.schemas import MigrationCreate
from balancer.cli.client import ClientError, refuse_while_led
from balancer.cli.common import fail
from balancer.cli.outcome import report
from balancer.config import Config
from balancer.errors import Conflict, MigrationError, StoreError
from balancer.executor.events import Event, Note, Progress, StateChanged, Waiting
from balancer.executor.hypervisor import Hypervisor
from balancer.executor.libvirt_hypervisor import libvirt_factory
from balancer.executor.runner import Runner
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE
from balancer.model import Move, MoveCost
from balancer.reasons import Reason
from balancer.service import libvirt_process, wiring
from balancer.service.leadership import LeaseKeeper
from balancer.store import Store

MIB = 1 << 20
LEASE_SECONDS = 30.0


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


def _progress(p: Progress) -> Text:
    left = f", {p.bytes_remaining / MIB:.0f} MiB left" if p.bytes_remaining else ""
    it = f", iteration {p.memory_iteration}" if p.memory_iteration else ""
    return Text(
        f"{p.vm} {p.source}→{p.target} [{p.phase}] {p.bytes_copied / MIB:.0f} MiB copied{left} "
        f"at {p.rate_bytes_s / MIB:.1f} MiB/s{it} ({p.elapsed_s:.0f} s)"
    )


def run_local(cfg: Config, req: MigrationCreate, console: Console) -> int:
    """Run ``req`` here under the leader lease; the exit code."""
    try:
        store = Store.open(cfg.store.url, create=False)
    except StoreError as exc:
        fail(f"error: --local: {exc}", EXIT_UNREACHABLE)
    try:
        try:
            refuse_while_led(store)
        except ClientError as exc:
            fail(f"error: {exc}", exc.exit_code)
        holder = f"cli:{getpass.getuser()}@{socket.gethostname()}/{os.getpid()}"
        keeper = LeaseKeeper(store, holder, LEASE_SECONDS)
        term = keeper.renew()
        if term is None:
            fail("error: --local refused: another instance took the leader lease just now", EXIT_FAILED)
        keeper.start()
        try:
            return _run(cfg, req, store, keeper, console)
        finally:
            keeper.stop()
    finally:
        store.close()


def _run(cfg: Config, req: MigrationCreate, store: Store, keeper: LeaseKeeper, console: Console) -> int:
    term = keeper.term()
    assert term is not None
    eps = wiring.executor_endpoints(cfg)
    libvirt_process.prepare()  # this process migrates: keepalives and quiet errors, as `balancer run`
    factory = libvirt_factory(eps)
    source = req.source or find_vm(req.vm, [h for h in eps if h != req.target], {h: factory(h) for h in eps})
    move = Move(req.vm, source, req.target, Reason.MANUAL, MoveCost(0, 0, 0, 0.0), detail="by --local")
    with Live(Text(f"{req.vm}: queued"), console=console, refresh_per_second=4, transient=True) as live:

        def sink(event: Event) -> None:
            if isinstance(event, Progress):
                live.update(_progress(event))
            elif isinstance(event, StateChanged):
                live.update(Text(f"{req.vm} {source}→{req.target} [{event.record.state.value}]"))
            elif isinstance(event, Waiting):
                live.update(Text(f"{req.vm}: waiting ({event.reason.value}: {event.detail})"))
            elif isinstance(event, Note):
                console.print(f"  {event.message}")

        runner = Runner(cfg.executor, cfg.limits, factory, store.journal(term.fence), eps, sink, term=term)
        started = time.monotonic()
        try:
            rec = runner.submit_one(
                move, bandwidth_mib_s=req.bandwidth_mib_s, copy_mode="full" if req.full_copy else None
            )
        except Conflict as exc:
            fail(f"error: {exc}", EXIT_FAILED)
        try:
            (outcome,) = runner.wait([rec.id])
        except KeyboardInterrupt:
            runner.abort(rec.id)
            ended = runner.wait([rec.id], timeout=120)
            if not ended:
                console.print(f"{req.vm}: interrupted; the migration goes on in libvirt (record {rec.id})")
                return EXIT_FAILED
            outcome = ended[0]
        runner.shutdown(0)
    return report(views.migration(outcome.record), time.monotonic() - started)
