"""`balancer migrate` goes through the service (its leader's queue, admission and journal), or with
``--local`` runs here holding the lease; libvirt's test driver stands in for the hosts (it cannot
migrate, so every move ends at its pre-check with libvirt's facts)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from balancer.api.schemas import MigrationOut, ProgressNow
from balancer.cli import migrate_cmd
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT
from balancer.model import MoveState
from balancer.reasons import Reason
from balancer.store import Store
from tests.cli.running import config, service

MIB = 2**20


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
    assert "web1: refused (target_no_memory)" in r.output
    assert local.exit_code == 1 and "--local refused: a service leads" in local.output
    with Store.open(f"sqlite:///{tmp_path / 'j.db'}") as store:
        (rec,) = store.records(vm="web1")
        assert (rec.source, rec.target, rec.reason, rec.state) == ("a", "c", Reason.MANUAL, MoveState.REFUSED)
        assert rec.epoch >= 1  # journaled by the leader, under its term
        assert [e.action for e in store.audit_log(subject=f"migration/{rec.id}")] == ["migration.create"]


def test_local_runs_here_under_the_lease_and_hands_it_back(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    Store.open(f"sqlite:///{tmp_path / 'j.db'}").close()  # a service created the store once
    r = migrate(cfg, "web1", "--to", "c", "--local")
    assert r.exit_code == 1, r.output
    assert "web1: refused (target_no_memory)" in r.output
    with Store.open(f"sqlite:///{tmp_path / 'j.db'}") as store:
        (rec,) = store.records(vm="web1")
        assert (rec.state, rec.epoch) == (MoveState.REFUSED, 1)
        assert store.current_leader() is None  # released: a service may lead at once


def test_local_with_an_unknown_vm_is_bad_input(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    Store.open(f"sqlite:///{tmp_path / 'j.db'}").close()
    r = migrate(cfg, "nope", "--to", "b", "--local")
    assert r.exit_code == 2
    assert "no running VM 'nope'" in r.output


def test_migrate_checks_both_hosts_before_asking_anyone(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    r = migrate(cfg, "web1", "--to", "b", "--from", "zz")
    assert r.exit_code == EXIT_INPUT
    assert "--from 'zz' is not a configured host (a, b, c)" in r.output
    assert not (tmp_path / "j.db").exists()


def test_migrate_through_the_service_journals_the_cap_and_the_copy_mode(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with service(cfg):
        r = migrate(cfg, "app1", "--to", "c", "--from", "b", "--bandwidth", "7", "--full-copy")
    assert r.exit_code == EXIT_FAILED, r.output  # the test driver cannot migrate; the pre-check ends it
    with Store.open(f"sqlite:///{tmp_path / 'j.db'}") as store:
        (rec,) = store.records(vm="app1")
    assert (rec.source, rec.target, rec.bandwidth_mib_s, rec.state) == ("b", "c", 7, MoveState.REFUSED)
    assert "queued on the leader http://127.0.0.1:" in r.output and f"[record {rec.id}]" in r.output


def test_the_progress_line_names_the_phase_the_bytes_and_the_rate() -> None:
    rec = MigrationOut.model_validate(
        {
            "id": "m1", "vm": "web1", "vm_uuid": "", "source": "a", "target": "b", "reason": "manual",
            "state": "migrating", "final": False, "outcome": None, "error": None, "detail": "",
            "plan_id": None, "created_at": 0.0, "updated_at": 0.0, "started_at": 0.0, "finished_at": None,
            "bandwidth_mib_s": 50, "copy_mode": None, "predicted_bytes": 0, "backing_bytes": 0,
            "disk_bytes": 0, "memory_bytes": 0, "downtime_ms": None,
        }
    )  # fmt: skip
    assert str(migrate_cmd._line("web1", rec, None)) == "web1 a→b [migrating]"
    p = ProgressNow(
        phase="memory",
        bytes_copied=300 * MIB,
        bytes_remaining=20 * MIB,
        rate_bytes_s=49.5 * MIB,
        elapsed_seconds=6.2,
        memory_iteration=2,
    )
    assert str(migrate_cmd._line("web1", rec, p)) == (
        "web1 a→b [memory] 300 MiB copied, 20 MiB left at 49.5 MiB/s, iteration 2 (6 s)"
    )
    done = p.model_copy(update={"bytes_remaining": 0, "memory_iteration": 0})
    assert str(migrate_cmd._line("web1", rec, done)) == "web1 a→b [memory] 300 MiB copied at 49.5 MiB/s (6 s)"
