"""`balancer status`, `balancer snapshot`, `balancer plan`: the cluster and what the planner would do.

They show the service's view (its last collection with maintenance and drains applied, moves in
flight, cooldowns and quarantines) from its API. ``--local`` (no service runs; refused while any
instance leads) builds the same view here: it polls every host twice, ``--sample-seconds`` apart
(CPU load is a rate between two polls), and reads drains and the journal from the store.
``plan --snapshot FILE`` replays a recorded snapshot offline (no service, no store, no host).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from balancer.api import views
from balancer.api.schemas import HostOut, VMOut
from balancer.cli.client import ApiBackend, ClientError, api_url, default_token, refuse_while_led
from balancer.cli.common import ConfigOption, fail, load_config, print_json
from balancer.cli.ops_cmd import ApiOption, LocalOption, TokenOption
from balancer.config import Config
from balancer.errors import StoreError
from balancer.executor.runner import move_of
from balancer.exit_codes import EXIT_INPUT, EXIT_UNREACHABLE
from balancer.model import (
    HostState,
    Plan,
    PlannerState,
    Snapshot,
    plan_to_dict,
    snapshot_from_json,
    snapshot_to_json,
)
from balancer.service import wiring
from balancer.store import Store
from balancer.store.records import DrainState

GIB = 2**30
SampleOption = typer.Option(1.0, "--sample-seconds", min=0.0, max=60.0, help="Seconds between the two polls.")


def collect(cfg: Config, sample_seconds: float) -> Snapshot:
    """Two polls, ``sample_seconds`` apart (the CPU rate needs an interval), of every configured host."""
    from balancer.metrics.collector import Collector
    from balancer.service import libvirt_process

    if not cfg.hosts:
        fail("config has no hosts: add them under `hosts:` (see config.yaml)", EXIT_INPUT)
    libvirt_process.prepare()  # this process talks to libvirtd: as `balancer run` does at its start
    with Collector.for_endpoints(wiring.endpoints(cfg), cfg.collection) as collector:
        collector.tick(time.time())
        if sample_seconds > 0:
            time.sleep(sample_seconds)  # a measurement interval, not a synchronisation
        return collector.tick(time.time())


class LocalView:
    """``--local``: the service's view, built here from the hosts and the store (while no one leads)."""

    def __init__(self, cfg: Config, sample_seconds: float) -> None:
        try:
            self.store = Store.open(cfg.store.url, create=False)
        except StoreError as exc:
            fail(f"error: --local: {exc}", EXIT_UNREACHABLE)
        try:
            refuse_while_led(self.store)
        except ClientError as exc:
            self.store.close()
            fail(f"error: {exc}", exc.exit_code)
        self.cfg = cfg
        self.now = self.store.now()
        latest: dict[str, DrainState] = {}
        for d in self.store.drains():  # newest first
            latest.setdefault(d.host, d.state)
        self.draining = {h for h, s in latest.items() if s == DrainState.OPEN}
        drained = {h for h, s in latest.items() if s == DrainState.DONE}
        maintenance = drained | set(cfg.rules.exclude_hosts)
        self.snapshot = wiring.with_host_states(collect(cfg, sample_seconds), self.draining, maintenance)
        p = cfg.policy
        self.recent = self.store.recent_moves(self.now - max(p.cooldown_minutes, p.quarantine_minutes) * 60)
        self.unfinished = self.store.unfinished_records()

    def close(self) -> None:
        self.store.close()

    def hosts(self) -> list[HostOut]:
        open_ids = {d.host: d.id for d in self.store.drains(state=DrainState.OPEN)}
        return views.hosts([h.name for h in self.cfg.hosts], self.snapshot, open_ids)

    def vms(self) -> list[VMOut]:
        p = self.cfg.policy
        holds = views.Holds.of(self.recent, self.unfinished, p.cooldown_minutes, p.quarantine_minutes)
        return [views.vm(v, holds, self.now) for v in self.snapshot.vms]

    def preview(self, drains: list[str]) -> Plan:
        from balancer.policy import plan as make_plan

        draining = frozenset(self.draining | set(drains))
        snap = wiring.with_host_states(self.snapshot, set(draining), set())
        in_flight = tuple(move_of(r) for r in self.unfinished)
        state = PlannerState(draining=draining, in_flight=in_flight, recent=self.recent)
        return make_plan(snap, state, wiring.plan_args(self.cfg), self.now)


def _api(cfg: Config, api: str | None, token: str | None) -> ApiBackend:
    return ApiBackend(api_url(cfg, api), token if token is not None else default_token(cfg))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def print_status(hosts: list[HostOut], vms: list[VMOut] | None, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{len(hosts)} hosts" + (f", {len(vms)} VMs" if vms is not None else ""))
    for col in ("host", "state", "CPU", "memory", "VMs", "VM disks", "drain"):
        table.add_column(col, justify="left" if col in ("host", "state") else "right")
    for h in hosts:
        state = f"[red]{h.state}[/red]" if h.state == HostState.DOWN else str(h.state)
        table.add_row(
            h.name,
            state,
            _pct(h.load.cpu if h.load else None),
            _pct(h.load.memory if h.load else None),
            str(h.vms),
            f"{h.vm_disk_bytes / GIB:.2f} GiB",
            str(h.drain_id) if h.drain_id is not None else "-",
        )
    console.print(table)
    for h in hosts:
        if h.error:
            console.print(f"[red]down:[/red] {h.name}: {h.error}")
    if vms is None:
        return
    vt = Table(title="VMs")
    for col in ("vm", "host", "state", "CPU cores", "memory", "disk", "held"):
        vt.add_column(col)
    for v in sorted(vms, key=lambda v: (v.host, v.name)):
        vt.add_row(
            v.name,
            v.host,
            v.state,
            f"{v.cpu_cores:.2f}",
            f"{v.memory_bytes / 2**20:.0f} MiB",
            f"{v.disk_bytes / 2**20:.0f} MiB",
            _held(v),
        )
    console.print(vt)


def _held(v: VMOut) -> str:
    parts = []
    if v.migration_id:
        parts.append(f"migrating ({v.migration_id})")
    if v.quarantined_until:
        parts.append(f"quarantined until {time.strftime('%H:%M', time.localtime(v.quarantined_until))}")
    if v.cooldown_until:
        parts.append(f"cooldown until {time.strftime('%H:%M', time.localtime(v.cooldown_until))}")
    return ", ".join(parts) or "-"


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        config: Path | None = ConfigOption,
        vms: bool = typer.Option(False, "--vms", help="Also list the VMs, with what holds them."),
        as_json: bool = typer.Option(False, "--json", help="The API's host (and VM) bodies."),
        sample_seconds: float = SampleOption,
        api: str | None = ApiOption,
        token: str | None = TokenOption,
        local: bool = LocalOption,
    ) -> None:
        """Hosts (state as the service sees it, CPU %, memory %, VMs, disks, drain) and, with --vms,
        the VMs, with what holds them (a migration, cooldown, quarantine)."""
        cfg = load_config(config)
        if local:
            view = LocalView(cfg, sample_seconds)
            try:
                hosts, vm_list = view.hosts(), view.vms() if vms else None
            finally:
                view.close()
        else:
            try:
                backend = _api(cfg, api, token)
                try:
                    hosts, vm_list = backend.hosts(), backend.vms() if vms else None
                finally:
                    backend.close()
            except ClientError as exc:
                fail(f"error: {exc}", exc.exit_code)
        if as_json:
            out: dict[str, object] = {"hosts": [h.model_dump(mode="json") for h in hosts]}
            if vm_list is not None:
                out["vms"] = [v.model_dump(mode="json") for v in vm_list]
            print_json(out)
            return
        print_status(hosts, vm_list)

    @app.command("snapshot")
    def snapshot(
        out: Path = typer.Option(..., "--out", "-o", help="File to write the Snapshot JSON to."),
        config: Path | None = ConfigOption,
        sample_seconds: float = SampleOption,
        api: str | None = ApiOption,
        token: str | None = TokenOption,
        local: bool = LocalOption,
    ) -> None:
        """Record the service's last collection as a Snapshot file (replay: `balancer plan --snapshot`)."""
        cfg = load_config(config)
        if local:
            view = LocalView(cfg, sample_seconds)
            view.close()
            snap = view.snapshot
        else:
            try:
                backend = _api(cfg, api, token)
                try:
                    snap = backend.snapshot()
                finally:
                    backend.close()
            except ClientError as exc:
                fail(f"error: {exc}", exc.exit_code)
        out.write_text(snapshot_to_json(snap))
        print(f"wrote {out}: {len(snap.hosts)} hosts, {len(snap.vms)} VMs")

    @app.command("plan")
    def plan_cmd(
        snapshot_file: Path | None = typer.Option(
            None, "--snapshot", help="Plan offline on a recorded Snapshot (no service, store or host)."
        ),
        drain: list[str] = typer.Option([], "--drain", help="Add a drain request for HOST (dry run)."),
        config: Path | None = ConfigOption,
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        sample_seconds: float = SampleOption,
        api: str | None = ApiOption,
        token: str | None = TokenOption,
        local: bool = LocalOption,
    ) -> None:
        """What the planner would do now on the service's view (or offline on a snapshot): moves,
        skips, imbalance before → after. Nothing is stored or started."""
        if snapshot_file is not None:
            result = _replay(snapshot_file, drain, config)
        else:
            cfg = load_config(config)
            known = {h.name for h in cfg.hosts}
            for h in drain:
                if h not in known:
                    fail(
                        f"--drain: {h!r} is not a configured host (known: {', '.join(sorted(known))})",
                        EXIT_INPUT,
                    )
            if local:
                view = LocalView(cfg, sample_seconds)
                try:
                    result = view.preview(drain)
                finally:
                    view.close()
            else:
                try:
                    backend = _api(cfg, api, token)
                    try:
                        result = backend.preview(drain)
                    finally:
                        backend.close()
                except ClientError as exc:
                    fail(f"error: {exc}", exc.exit_code)
        if as_json:
            print_json(plan_to_dict(result))
            return
        print_plan(result)


def _replay(path: Path, drain: list[str], config: Path | None) -> Plan:
    from balancer.policy import plan as make_plan

    try:
        snap = snapshot_from_json(path.read_bytes())
    except OSError as exc:
        fail(f"--snapshot {path}: cannot be read: {exc.strerror}", EXIT_INPUT)
    cfg = load_config(config) if config is not None else Config()
    known = {h.name for h in snap.hosts}
    for h in drain:
        if h not in known:
            fail(
                f"--drain: {h!r} is not a host of this cluster (known: {', '.join(sorted(known))})",
                EXIT_INPUT,
            )
    snap = wiring.with_host_states(snap, set(drain), set(cfg.rules.exclude_hosts))
    return make_plan(snap, PlannerState(draining=frozenset(drain)), wiring.plan_args(cfg), snap.taken_at)


def print_plan(plan: Plan, console: Console | None = None) -> None:
    """The plan as tables: moves with reason, bytes and predicted seconds; skips with reasons."""
    console = console or Console()
    console.print(
        f"imbalance {plan.imbalance_before:.3f} → {plan.imbalance_after:.3f}; overloaded hosts "
        f"{', '.join(plan.overloaded_before) or 'none'} → {', '.join(plan.overloaded_after) or 'none'}; "
        f"{len(plan.moves)} move(s), {plan.predicted_bytes / GIB:.2f} GiB to copy"
    )
    if plan.moves:
        t = Table(title="moves")
        for col in ("#", "vm", "from", "to", "reason", "copy", "GiB", "seconds", "detail"):
            t.add_column(col)
        for i, m in enumerate(plan.moves):
            flags = "".join(f" [yellow]{f.value}[/yellow]" for f in m.flags)
            waits = f" (starts once {', '.join(m.after)} left {m.target})" if m.after else ""
            t.add_row(
                str(i),
                m.vm,
                m.source,
                m.target,
                m.reason.value + flags,
                m.cost.copy_mode,
                f"{m.cost.total_bytes / GIB:.2f}",
                f"{m.cost.seconds:.0f}",
                m.detail + waits,
            )
        console.print(t)
    if plan.skips:
        t = Table(title="skipped")
        for col in ("what", "name", "reason", "detail"):
            t.add_column(col)
        for s in plan.skips:
            t.add_row(s.subject, s.name, s.reason.value, s.detail)
        console.print(t)
