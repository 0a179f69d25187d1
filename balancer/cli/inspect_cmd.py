"""`balancer status`, `balancer snapshot`, `balancer plan`: look at the cluster and what the planner would do.

These run locally against the hosts in the config (no service needed). A one-shot collection
polls twice, ``--sample-seconds`` apart, because CPU load is a rate between two polls.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from balancer.cli.common import EXIT_INPUT, ConfigOption, fail, load_config, print_json
from balancer.config import Config
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

GIB = 2**30
SampleOption = typer.Option(1.0, "--sample-seconds", min=0.0, max=60.0, help="Seconds between the two polls.")


def collect(cfg: Config, sample_seconds: float) -> Snapshot:
    """Two polls, ``sample_seconds`` apart (the CPU rate needs an interval), of every configured host."""
    from balancer.metrics.collector import Collector

    if not cfg.hosts:
        fail("config has no hosts: add them under `hosts:` (see config.yaml)", EXIT_INPUT)
    with Collector.for_endpoints(wiring.endpoints(cfg), cfg.collection) as collector:
        collector.tick(time.time())
        if sample_seconds > 0:
            time.sleep(sample_seconds)  # a measurement interval, not a synchronisation
        snap = collector.tick(time.time())
    return wiring.with_host_states(snap, set(), set(cfg.rules.exclude_hosts))


def host_rows(snap: Snapshot) -> list[dict[str, object]]:
    used = snap.arrays().used()
    ratios = snap.load_ratios()
    rows: list[dict[str, object]] = []
    for i, h in enumerate(snap.hosts):
        rows.append(
            {
                "host": h.name,
                "state": h.state.value,
                "cpu_ratio": ratios[h.name]["cpu"] if h.cpus else None,
                "memory_ratio": ratios[h.name]["memory"] if h.memory_bytes else None,
                "vms": sum(1 for v in snap.vms if v.host == h.name),
                "disk_bytes": int(used[i, 2]),
                "cpus": h.cpus,
                "memory_bytes": h.memory_bytes,
                "error": h.error,
            }
        )
    return rows


def _pct(x: object) -> str:
    return "-" if not isinstance(x, float) else f"{100 * x:.0f}%"


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        config: Path | None = ConfigOption,
        vms: bool = typer.Option(False, "--vms", help="Also list the VMs on each host."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        sample_seconds: float = SampleOption,
    ) -> None:
        """Hosts (state, CPU %, memory %, VMs, disk) and, with --vms, the VMs on each."""
        cfg = load_config(config)
        snap = collect(cfg, sample_seconds)
        rows = host_rows(snap)
        if as_json:
            out: dict[str, object] = {"taken_at": snap.taken_at, "hosts": rows}
            if vms:
                out["vms"] = [
                    {
                        "name": v.name,
                        "host": v.host,
                        "state": v.state,
                        "cpu_cores": v.cpu_cores,
                        "cpu_std_cores": v.cpu_std_cores,
                        "memory_bytes": v.memory_bytes,
                        "disk_bytes": v.disk_allocated_bytes,
                    }
                    for v in snap.vms
                ]
            print_json(out)
            return
        console = Console()
        table = Table(title=f"{len(snap.hosts)} hosts, {len(snap.vms)} VMs")
        for col in ("host", "state", "CPU", "memory", "VMs", "disk"):
            table.add_column(col, justify="left" if col in ("host", "state") else "right")
        for r in rows:
            state = str(r["state"])
            shown = f"[red]{state}[/red]" if state == HostState.DOWN else state
            table.add_row(
                str(r["host"]),
                shown,
                _pct(r["cpu_ratio"]),
                _pct(r["memory_ratio"]),
                str(r["vms"]),
                f"{int(r['disk_bytes']) / GIB:.2f} GiB",  # type: ignore[call-overload]
            )
        console.print(table)
        for r in rows:
            if r["error"]:
                console.print(f"[red]down:[/red] {r['error']}")
        if vms:
            vt = Table(title="VMs")
            for col in ("vm", "host", "state", "CPU cores", "memory", "disk"):
                vt.add_column(col)
            for v in sorted(snap.vms, key=lambda v: (v.host, v.name)):
                vt.add_row(
                    v.name,
                    v.host,
                    v.state,
                    f"{v.cpu_cores:.2f}",
                    f"{v.memory_bytes / 2**20:.0f} MiB",
                    f"{v.disk_allocated_bytes / 2**20:.0f} MiB",
                )
            console.print(vt)

    @app.command("snapshot")
    def snapshot(
        out: Path = typer.Option(..., "--out", "-o", help="File to write the Snapshot JSON to."),
        config: Path | None = ConfigOption,
        sample_seconds: float = SampleOption,
    ) -> None:
        """Record the cluster as a Snapshot JSON file (replay it with `balancer plan --snapshot FILE`)."""
        cfg = load_config(config)
        snap = collect(cfg, sample_seconds)
        out.write_text(snapshot_to_json(snap))
        print(f"wrote {out}: {len(snap.hosts)} hosts, {len(snap.vms)} VMs")

    @app.command("plan")
    def plan_cmd(
        snapshot_file: Path | None = typer.Option(None, "--snapshot", help="Plan on a recorded Snapshot."),
        drain: list[str] = typer.Option([], "--drain", help="Add a drain request for HOST (dry run)."),
        config: Path | None = ConfigOption,
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        sample_seconds: float = SampleOption,
    ) -> None:
        """What the planner would do now (or on a snapshot): moves, skips, imbalance before → after."""
        from balancer.policy import plan as make_plan

        if snapshot_file is not None:
            try:
                snap = snapshot_from_json(snapshot_file.read_bytes())
            except OSError as exc:
                fail(f"--snapshot {snapshot_file}: cannot be read: {exc.strerror}", EXIT_INPUT)
            cfg = load_config(config) if config is not None else Config()
        else:
            cfg = load_config(config)
            snap = collect(cfg, sample_seconds)
        known = {h.name for h in snap.hosts}
        for h in drain:
            if h not in known:
                fail(
                    f"--drain: {h!r} is not a host of this cluster (known: {', '.join(sorted(known))})",
                    EXIT_INPUT,
                )
        snap = wiring.with_host_states(snap, set(drain), set(cfg.rules.exclude_hosts))
        result = make_plan(
            snap, PlannerState(draining=frozenset(drain)), wiring.plan_args(cfg), snap.taken_at
        )
        if as_json:
            print_json(plan_to_dict(result))
            return
        print_plan(result)


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
