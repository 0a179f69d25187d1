"""`balancer migrate` goes through the service (its leader's queue, admission and journal), or with
``--local`` runs here holding the lease; libvirt's test driver stands in for the hosts (it cannot
migrate, so every move ends at its pre-check with libvirt's facts)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from balancer.cli import migrate_cmd
from balancer.model import MoveState
from balancer.reasons import Reason
from balancer.store import Store
from tests.cli.running import config, service


def app() -> typer.Typer:
    a = typer.Typer()
    migrate_cmd.register(a)

    @a.command("noop")
    def _noop() -> None:  # a second command so typer keeps `migrate` as a subcommand
        pass

    return a


def migrate(cfg: Path, *args: str) -> Result:
    env = {"BALANCER_API": None, "BALANCER_TOKEN": None, "COLUMNS": "200"}
    return CliRunner().invoke(app(), ["migrate", *args, "--config", str(cfg)], env=env)


def test_unknown_target_host_is_bad_input(tmp_path: Path) -> None:
    r = migrate(config(tmp_path), "vm1", "--to", "zz")
    assert r.exit_code == 2
    assert "--to 'zz' is not a configured host" in r.output


def test_no_service_is_exit_3_naming_the_address(tmp_path: Path) -> None:
    r = migrate(config(tmp_path), "web1", "--to", "b")
    assert r.exit_code == 3
    assert "no service answers at http://127.0.0.1:" in r.output


def test_a_migration_goes_through_the_leader_and_is_journaled_by_it(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with service(cfg):
        unknown = migrate(cfg, "nope", "--to", "b")
        assert unknown.exit_code == 2, unknown.output
        assert "vm 'nope' is not a running VM of the last collection" in unknown.output
        r = migrate(cfg, "web1", "--to", "c")
        local = migrate(cfg, "web1", "--to", "c", "--local")
    assert "queued on the leader http://127.0.0.1:" in r.output
    # the test driver cannot migrate: the leader's pre-check ends it with libvirt's facts
    assert r.exit_code == 1, r.output
    assert "web1: failed (target_no_memory)" in r.output
    assert local.exit_code == 1 and "--local refused: a service leads" in local.output
    with Store.open(f"sqlite:///{tmp_path / 'j.db'}") as store:
        (rec,) = store.records(vm="web1")
        assert (rec.source, rec.target, rec.reason, rec.state) == ("a", "c", Reason.MANUAL, MoveState.FAILED)
        assert rec.epoch >= 1  # journaled by the leader, under its term
        assert [e.action for e in store.audit_log(subject=f"migration/{rec.id}")] == ["migration.create"]


def test_local_runs_here_under_the_lease_and_hands_it_back(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    Store.open(f"sqlite:///{tmp_path / 'j.db'}").close()  # a service created the store once
    r = migrate(cfg, "web1", "--to", "c", "--local")
    assert r.exit_code == 1, r.output
    assert "web1: failed (target_no_memory)" in r.output
    with Store.open(f"sqlite:///{tmp_path / 'j.db'}") as store:
        (rec,) = store.records(vm="web1")
        assert (rec.state, rec.epoch) == (MoveState.FAILED, 1)
        assert store.current_leader() is None  # released: a service may lead at once


def test_local_with_an_unknown_vm_is_bad_input(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    Store.open(f"sqlite:///{tmp_path / 'j.db'}").close()
    r = migrate(cfg, "nope", "--to", "b", "--local")
    assert r.exit_code == 2
    assert "no running VM 'nope'" in r.output
