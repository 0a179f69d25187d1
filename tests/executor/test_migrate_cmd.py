"""`balancer migrate` input handling (exit 2), without a lab: the libvirt test driver stands in for hosts."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from balancer.cli import migrate_cmd


def app() -> typer.Typer:
    a = typer.Typer()
    migrate_cmd.register(a)

    @a.command("noop")
    def _noop() -> None:  # a second command so typer keeps `migrate` as a subcommand
        pass

    return a


def config(tmp_path: Path) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(
        "hosts:\n"
        "  - {name: a, uri: 'test:///default'}\n"
        "  - {name: b, uri: 'test:///default'}\n"
        f"store: {{url: 'sqlite:///{tmp_path / 'j.db'}'}}\n"
    )
    return p


def test_unknown_target_host_is_bad_input(tmp_path: Path) -> None:
    r = CliRunner().invoke(app(), ["migrate", "vm1", "--to", "zz", "--config", str(config(tmp_path))])
    assert r.exit_code == 2
    assert "--to 'zz' is not a configured host" in r.output


def test_unknown_vm_is_bad_input(tmp_path: Path) -> None:
    r = CliRunner().invoke(app(), ["migrate", "nope", "--to", "b", "--config", str(config(tmp_path))])
    assert r.exit_code == 2
    assert "no running VM 'nope'" in r.output
