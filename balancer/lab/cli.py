"""`balancer lab ...`: bring a local lab up and down, make guests, inject faults.

Exit codes: 0 done, 1 failed (or check-clean found leftovers), 2 refused (a lab already exists).
Every command takes --dir (default $BALANCER_LAB_DIR, else /var/tmp/balancer-lab/lab).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, NoReturn

import libvirt
import typer
from rich.console import Console
from rich.table import Table

from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT
from balancer.lab import teardown
from balancer.lab.accel import VIRT_TYPE_CHOICES
from balancer.lab.errors import LabError, LabExistsError, LabNotFoundError
from balancer.lab.lab import Lab
from balancer.lab.layout import LabLayout, default_lab_dir

app = typer.Typer(
    help="A local cluster of libvirtd hosts in namespaces, for real live migrations.", no_args_is_help=True
)
guest_app = typer.Typer(
    help="Guests: small Linux VMs with a heartbeat and tunable load.", no_args_is_help=True
)
app.add_typer(guest_app, name="guest")

out = Console(highlight=False, soft_wrap=True)  # URIs and paths stay whole for copy and paste
err = Console(stderr=True, highlight=False, soft_wrap=True)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="Lab directory [default: $BALANCER_LAB_DIR or /var/tmp/balancer-lab/lab]"),
]
HostArg = Annotated[str, typer.Argument(help="Host name: h1, h2, ...")]


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _open(directory: Path | None) -> Lab:
    try:
        return Lab.open(directory)
    except LabNotFoundError as exc:
        _fail(f"{exc}; start one with `balancer lab up`")


@app.command()
def up(
    hosts: Annotated[int, typer.Option(help="Number of hosts (h1..hN)", min=1, max=200)] = 3,
    directory: DirOption = None,
    virt_type: Annotated[
        str, typer.Option(help=f"Guest domain type: {'|'.join(VIRT_TYPE_CHOICES)}")
    ] = "auto",
) -> None:
    """Bring up hosts h1..hN; refuses (exit 2) if a lab already exists in the directory."""
    started = time.monotonic()
    try:
        lab = Lab.up(hosts=hosts, directory=directory, virt_type=virt_type)
    except LabExistsError as exc:
        _fail(str(exc), code=EXIT_INPUT)
    except LabError as exc:
        _fail(str(exc))
    out.print(f"lab up in {time.monotonic() - started:.2f} s: {lab.directory} (virt type {lab.virt_type})")
    for host in lab.hosts:
        out.print(
            f"{host.name}  address {host.address}\n    control   {host.control_uri}\n"
            f"    migration {host.migration_uri}"
        )


@app.command()
def down(directory: DirOption = None) -> None:
    """Remove every process, mount, namespace and file of the lab."""
    layout = LabLayout.of(directory if directory is not None else default_lab_dir())
    if not layout.directory.exists():
        out.print(f"no lab in {layout.directory}")
        return
    started = time.monotonic()
    try:
        teardown.down(layout)
    except LabError as exc:
        _fail(str(exc))
    out.print(f"lab down in {time.monotonic() - started:.2f} s")


@app.command("check-clean")
def check_clean(directory: DirOption = None) -> None:
    """Exit 1 listing anything of the lab left behind (processes, mounts, namespaces, files)."""
    layout = LabLayout.of(directory if directory is not None else default_lab_dir())
    left = teardown.check_clean(layout)
    for item in left:
        out.print(f"LEFT {item}")
    if left:
        raise typer.Exit(EXIT_FAILED)
    out.print("clean")


@app.command()
def status(directory: DirOption = None) -> None:
    """Hosts, their libvirtd and their domains."""
    lab = _open(directory)
    table = Table("host", "address", "libvirtd", "domains")
    for host in lab.hosts:
        pid = lab.libvirtd_pid(host.name)
        try:
            text = ", ".join(f"{d.name} ({d.state})" for d in lab.host_domains(host.name)) or "-"
        except libvirt.libvirtError as exc:
            text = f"unreachable: {exc.get_error_message()}"
        table.add_row(host.name, host.address, f"pid {pid}" if pid else "[red]down[/red]", text)
    out.print(f"lab {lab.directory} (virt type {lab.virt_type})")
    out.print(table)


@app.command()
def config(
    directory: DirOption = None,
    cpus: Annotated[float, typer.Option(help="Declared CPU capacity per host")] = 1.0,
    memory_mib: Annotated[int, typer.Option(help="Declared memory capacity per host, MiB")] = 1024,
) -> None:
    """Print the `hosts:` section of a balancer config.yaml pointing at the lab."""
    # plain echo: rich would wrap long URIs at the terminal width and break the YAML
    typer.echo(_open(directory).config_yaml(cpus=cpus, memory_mib=memory_mib), nl=False)


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    host: HostArg,
    command: Annotated[list[str], typer.Argument(help="Command and arguments")],
    directory: DirOption = None,
) -> None:
    """Run a command on a host (its namespaces), like ssh: `balancer lab exec h1 -- ip addr`."""
    if command[:1] == ["--"]:  # click keeps the separator once the host argument ended the options
        command = command[1:]
    proc = _open(directory).exec(host, *command, timeout=3600)
    typer.echo(proc.stdout, nl=False)
    typer.echo(proc.stderr, nl=False, err=True)
    raise typer.Exit(proc.returncode)


@app.command()
def libvirtd(
    host: HostArg,
    action: Annotated[str, typer.Argument(help="start | stop | kill | restart")],
    directory: DirOption = None,
) -> None:
    """Start, stop (SIGTERM), kill (SIGKILL) or restart a host's libvirtd; guests keep running."""
    lab = _open(directory)
    actions = {
        "start": lab.start_libvirtd,
        "stop": lab.stop_libvirtd,
        "kill": lab.kill_libvirtd,
        "restart": lab.restart_libvirtd,
    }
    if action not in actions:
        _fail(f"action {action!r}: one of {', '.join(actions)}")
    try:
        actions[action](host)
    except LabError as exc:
        _fail(str(exc))
    out.print(f"libvirtd of {host}: {action} done (pid {lab.libvirtd_pid(host)})")


@app.command()
def link(
    host: HostArg,
    state: Annotated[str, typer.Argument(help="up | down")],
    directory: DirOption = None,
) -> None:
    """Cut (down) or restore (up) a host's link to the lab network."""
    lab = _open(directory)
    if state not in ("up", "down"):
        _fail(f"state {state!r}: up or down")
    (lab.link_up if state == "up" else lab.link_down)(host)
    out.print(f"link of {host}: {state}")


@guest_app.command("create")
def guest_create(
    name: Annotated[str, typer.Argument(help="Domain name, unique in the lab")],
    host: Annotated[str, typer.Option(help="Host to start it on")] = "h1",
    memory: Annotated[int, typer.Option(help="RAM, MiB")] = 128,
    disk_overlay_mib: Annotated[int, typer.Option(help="MiB written into the qcow2 overlay up front")] = 64,
    dirty_mib_s: Annotated[int, typer.Option(help="RAM rewritten per second, MiB")] = 8,
    disk_mib_s: Annotated[int, typer.Option(help="Disk written per second, MiB")] = 1,
    cpu_burn: Annotated[int, typer.Option(help="Percent of its vCPU to burn", min=0, max=100)] = 0,
    wait: Annotated[bool, typer.Option(help="Wait for the first heartbeat")] = True,
    directory: DirOption = None,
) -> None:
    """Create and start a guest: qcow2 overlay on the shared base, heartbeat on its serial log."""
    lab = _open(directory)
    started = time.monotonic()
    try:
        guest = lab.create_guest(
            name,
            host,
            memory_mib=memory,
            overlay_mib=disk_overlay_mib,
            dirty_mib_s=dirty_mib_s,
            disk_mib_s=disk_mib_s,
            cpu_burn_pct=cpu_burn,
        )
        out.print(
            f"{guest.name} started on {host}: disk {guest.disk_path}, serial log "
            f"{lab.host_path(host, guest.serial_log)}"
        )
        if wait:
            beat = lab.wait_heartbeat(host, name)
            out.print(f"heartbeat {beat} after {time.monotonic() - started:.1f} s")
    except LabError as exc:
        _fail(str(exc))


@guest_app.command("list")
def guest_list(directory: DirOption = None) -> None:
    """Every domain on every host, with its last heartbeat there."""
    lab = _open(directory)
    table = Table("host", "name", "state", "persistent", "last heartbeat")
    for dom in lab.domains():
        beat = lab.heartbeat(dom.host, dom.name)
        table.add_row(
            dom.host,
            dom.name,
            dom.state,
            "yes" if dom.persistent else "no",
            "-" if beat is None else str(beat),
        )
    out.print(table)


@guest_app.command("delete")
def guest_delete(
    name: Annotated[str, typer.Argument(help="Domain name")], directory: DirOption = None
) -> None:
    """Destroy and undefine a lab guest and delete its overlay and logs on every host."""
    try:
        _open(directory).delete_guest(name)
    except LabError as exc:
        _fail(str(exc))
    out.print(f"{name} deleted")
