"""The operator commands with no service running: they fall back to the store (except abort)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from balancer.cli.ops_cmd import register
from balancer.model import MoveState
from balancer.store import Store
from balancer.store.records import DrainProgress, DrainState, MoveStatus, PlanStatus
from tests.api.harness import NOW, free_port, plan, write_config
from tests.cli.drain_steps import opened_drain, report_then_close
from tests.store.builders import record

app = typer.Typer()
register(app)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state/balancer.db"


@pytest.fixture
def cfg_file(tmp_path: Path, store_url: str) -> Path:
    """api.listen names a port nothing listens on: every command finds no service."""
    return write_config(tmp_path / "config.yaml", store_url, listen=f"127.0.0.1:{free_port()}")


@pytest.fixture
def store(store_url: str, cfg_file: Path) -> Iterator[Store]:
    with Store.open(store_url, now=0.0) as s:
        yield s


def run(cfg_file: Path, *args: str, **env: str | None) -> Result:
    environ = {
        "BALANCER_API": None,
        "BALANCER_TOKEN": None,
        "SUDO_USER": None,
        "USER": "alice",
        "COLUMNS": "200",
        **env,
    }
    return CliRunner().invoke(app, [*args, "--config", str(cfg_file)], env=environ)


def test_drain_writes_to_the_store_as_the_cli_user_and_says_so(cfg_file: Path, store: Store) -> None:
    r = run(cfg_file, "drain", "h1", "--note", "disk swap")
    assert r.exit_code == 0, r.output
    assert "note: no service answers at http://127.0.0.1:" in r.stderr
    assert "using the store sqlite:///" in r.stderr and "at its next tick" in r.stderr
    assert r.stdout == "h1: drain 1 opened\n"
    (d,) = store.drains()
    assert (d.host, d.requested_by, d.note) == ("h1", "alice", "disk swap")
    (entry,) = store.audit_log()
    assert (entry.actor, entry.action) == ("alice", "drain.create")


def test_sudo_user_is_the_actor_under_sudo(cfg_file: Path, store: Store) -> None:
    assert run(cfg_file, "drain", "h2", SUDO_USER="bob", USER="root").exit_code == 0
    assert store.drains()[0].requested_by == "bob"


def test_undrain_and_drains(cfg_file: Path, store: Store) -> None:
    store.create_drain("h1", "ops", NOW)
    r = run(cfg_file, "undrain", "h1")
    assert (r.exit_code, r.stdout) == (0, "h1: drain 1 cancelled\n")
    assert store.drains()[0].closed_by == "alice"
    listed = json.loads(run(cfg_file, "drains", "--json").stdout)
    assert [(d["host"], d["state"]) for d in listed] == [("h1", "cancelled")]


def test_plans_approve_and_reject(cfg_file: Path, store: Store) -> None:
    pid = store.save_plan(plan(), "recommend", NOW).id
    assert json.loads(run(cfg_file, "plans", "--json").stdout)[0]["id"] == pid
    assert "web-2" in run(cfg_file, "plans", "show", str(pid)).stdout
    assert run(cfg_file, "approve", str(pid), "--move", "0").exit_code == 0
    assert run(cfg_file, "reject", str(pid)).exit_code == 0
    row = store.get_plan(pid)
    assert (row.status, row.decided_by) == (PlanStatus.REJECTED, "alice")
    assert [m.status for m in row.moves] == [MoveStatus.REJECTED, MoveStatus.REJECTED]
    r = run(cfg_file, "approve", str(pid))
    assert (r.exit_code, r.stderr.splitlines()[-1]) == (
        1,
        f"error: plan {pid} is rejected; it can no longer be approved or rejected",
    )
    assert run(cfg_file, "approve", "99").exit_code == 2


def test_migrations_are_read_from_the_journal(cfg_file: Path, store: Store) -> None:
    store.save_record(record("m1", vm="db-1", state=MoveState.SUCCEEDED))
    assert [m["id"] for m in json.loads(run(cfg_file, "migrations", "--json").stdout)] == ["m1"]


def test_abort_needs_the_service(cfg_file: Path, store: Store) -> None:
    store.save_record(record("m1", state=MoveState.MIGRATING))
    r = run(cfg_file, "abort", "m1")
    assert r.exit_code == 3
    assert "abort needs the running service" in r.stderr


def test_drain_wait_ends_when_the_service_closes_the_drain(cfg_file: Path, store: Store) -> None:
    def service() -> None:  # what the service's ticks do until the host is empty
        progress = DrainProgress(2, 9 * 2**30, ("web-1",), 1, 0, 30.0)
        report_then_close(store, progress, DrainProgress(0, 0, (), 3, 0, 0.0))

    worker = threading.Thread(target=service)
    worker.start()
    r = run(cfg_file, "drain", "h1", "--wait", "--interval", "0.05")
    worker.join()
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["h1: drain 1 opened", "h1: drained (3 VMs moved)"]


def test_drain_wait_stops_past_the_deadline(cfg_file: Path, store: Store) -> None:
    r = run(cfg_file, "drain", "h3", "--wait", "--deadline", "1s", "--interval", "0.05")
    assert r.exit_code == 1
    assert "h3: drain 1 is past its deadline" in r.stdout
    assert store.drains()[0].state == DrainState.OPEN  # the drain itself goes on


def test_drain_wait_reports_a_cancelled_drain(cfg_file: Path, store: Store) -> None:
    def operator() -> None:
        store.close_drain(opened_drain(store).id, DrainState.CANCELLED, "carol", time.time())

    worker = threading.Thread(target=operator)
    worker.start()
    r = run(cfg_file, "drain", "h2", "--wait", "--interval", "0.05")
    worker.join()
    assert r.exit_code == 1
    assert "h2: drain 1 was cancelled by carol" in r.stdout
