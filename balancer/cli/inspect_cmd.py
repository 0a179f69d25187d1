"""`balancer status`, `balancer snapshot`, `balancer plan`: the cluster and what the planner would do.

They show the service's view (its last collection with maintenance and drains applied, moves in
flight, cooldowns and quarantines) from its API. ``--local`` (no service runs; refused while any
instance leads) builds the same view here: it polls every host twice, ``--sample-seconds`` apart
(CPU load is a rate between two polls), and reads drains and the journal from the store.
``plan --snapshot FILE`` replays a recorded snapshot offline (no service, no store, no host).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import typer

from balancer.api import views
from balancer.api.schemas import HostOut, VMOut
from balancer.cli.client import ApiBackend, ClientError, api_url, default_token, refuse_while_led
from balancer.cli.common import ConfigOption, fail, load_config, print_json
from balancer.cli.ops_cmd import ApiOption, LocalOption, TokenOption
from balancer.cli.output import Column, JsonOption, Output, OutputOption, chosen, table
from balancer.config import Config
from balancer.errors import StoreError
from balancer.executor.runner import move_of
from balancer.exit_codes import EXIT_INPUT, EXIT_UNREACHABLE
from balancer.model import (
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


HOST_COLUMNS = (
    Column("HOST"),
    Column("STATE"),
    Column("CPU", right=True),
    Column("MEMORY", right=True),
    Column("VMS", right=True),
    Column("VM DISKS", drop=2, right=True),
    Column("DRAIN", drop=1, right=True),
    Column("CPUS", wide=True, right=True),
    Column("MEMORY SIZE", wide=True, right=True),
    Column("DISK CAPACITY", wide=True, right=True),
    Column("DISK FREE", wide=True, right=True),
)
VM_COLUMNS = (
    Column("VM"),
    Column("HOST"),
    Column("STATE"),
    Column("CPU CORES", drop=3, right=True),
    Column("MEMORY", drop=2, right=True),
    Column("DISK", drop=1, right=True),
    Column("HELD"),
    Column("VCPUS", wide=True, right=True),
    Column("UUID", wide=True),
    Column("MIGRATION", wide=True),
)


def print_status(
    hosts: list[HostOut],
    vms: list[VMOut] | None,
    mode: Output = Output.TABLE,
    out: TextIO | None = None,
    width: int | None = None,
) -> None:
    """Hosts (and VMs) as tables; a down host's error on a line of its own, never cut."""
    out = out or sys.stdout
    print(f"{len(hosts)} hosts" + (f", {len(vms)} VMs" if vms is not None else ""), file=out)
    rows = [
        (
            h.name,
            h.state,
            _pct(h.load.cpu if h.load else None),
            _pct(h.load.memory if h.load else None),
            h.vms,
            f"{h.vm_disk_bytes / GIB:.2f} GiB",
            h.drain_id if h.drain_id is not None else "-",
            "-" if h.cpus is None else f"{h.cpus:g}",
            _bytes(h.memory_bytes),
            _bytes(h.disk_capacity_bytes or None),  # 0: unknown
            _bytes(h.disk_free_bytes),
        )
        for h in hosts
    ]
    table(HOST_COLUMNS, rows, mode, out=out, width=width)
    for h in hosts:
        if h.error:
            print(f"down: {h.name}: {h.error}", file=out)
    if vms is None:
        return
    print(file=out)
    vm_rows = [
        (
            v.name,
            v.host,
            v.state,
            f"{v.cpu_cores:.2f}",
            f"{v.memory_bytes / 2**20:.0f} MiB",
            f"{v.disk_allocated_bytes / 2**20:.0f} MiB",
            _held(v),
            v.vcpus,
            v.uuid,
            v.migration_id or "-",
        )
        for v in sorted(vms, key=lambda v: (v.host, v.name))
    ]
    table(VM_COLUMNS, vm_rows, mode, out=out, width=width)


def _bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f} GiB"


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
        output: Output = OutputOption,
        as_json: bool = JsonOption,
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
        mode = chosen(output, as_json)
        if mode == Output.JSON:  # the API's bodies: GET /v1/hosts (and /v1/vms) under their names
            out: dict[str, object] = {"hosts": [h.model_dump(mode="json") for h in hosts]}
            if vm_list is not None:
                out["vms"] = [v.model_dump(mode="json") for v in vm_list]
            print_json(out)
            return
        print_status(hosts, vm_list, mode)

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
        output: Output = OutputOption,
        as_json: bool = JsonOption,
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
        mode = chosen(output, as_json)
        if mode == Output.JSON:  # as POST /v1/preview answers
            print_json(plan_to_dict(result))
            return
        print_plan(result, mode)


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


MOVE_COLUMNS = (
    Column("#", right=True),
    Column("VM"),
    Column("FROM"),
    Column("TO"),
    Column("REASON"),
    Column("COPY", drop=3),
    Column("GIB", drop=2, right=True),
    Column("SECONDS", drop=4, right=True),
    Column("DETAIL", drop=1),
)
SKIP_COLUMNS = (Column("WHAT"), Column("NAME"), Column("REASON"), Column("DETAIL", drop=1))


def print_plan(
    plan: Plan, mode: Output = Output.TABLE, out: TextIO | None = None, width: int | None = None
) -> None:
    """The plan as tables: moves with reason, bytes and predicted seconds; skips with reasons."""
    out = out or sys.stdout
    print(
        f"imbalance {plan.imbalance_before:.3f} → {plan.imbalance_after:.3f}; overloaded hosts "
        f"{', '.join(plan.overloaded_before) or 'none'} → {', '.join(plan.overloaded_after) or 'none'}; "
        f"{len(plan.moves)} move(s), {plan.predicted_bytes / GIB:.2f} GiB to copy",
        file=out,
    )
    if plan.moves:
        rows = []
        for i, m in enumerate(plan.moves):
            flags = "".join(f" {f.value}" for f in m.flags)
            waits = f" (starts once {', '.join(m.after)} left {m.target})" if m.after else ""
            cost = m.cost
            detail = (m.detail + waits) or "-"
            rows.append((i, m.vm, m.source, m.target, m.reason.value + flags, cost.copy_mode,
                         f"{cost.total_bytes / GIB:.2f}", f"{cost.seconds:.0f}", detail))  # fmt: skip
        print(file=out)
        table(MOVE_COLUMNS, rows, mode, out=out, width=width)
    if plan.skips:
        print(file=out)
        skips = [(s.subject, s.name, s.reason.value, s.detail or "-") for s in plan.skips]
        table(SKIP_COLUMNS, skips, mode, out=out, width=width)
