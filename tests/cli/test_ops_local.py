"""The operator commands with no service: an error naming the address, never a store of their own;
``--local`` acts on an existing store, and only while no instance leads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from balancer.cli.ops_cmd import register
from balancer.model import MoveState
from balancer.store import Store
from balancer.store.records import MoveStatus, PlanStatus
from tests.api.harness import NOW, free_port, plan, write_config
from tests.leader import fence_of
from tests.store.builders import record

app = typer.Typer()
register(app)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "balancer.db"


@pytest.fixture
def cfg_file(tmp_path: Path, store_path: Path) -> Path:
    """api.listen names a port nothing listens on: no service answers."""
    return write_config(
        tmp_path / "config.yaml", f"sqlite:///{store_path}", listen=f"127.0.0.1:{free_port()}"
    )


@pytest.fixture
def store(store_path: Path, cfg_file: Path) -> Store:
    s = Store.open(f"sqlite:///{store_path}", now=0.0)  # the service created it once
    yield s  # type: ignore[misc]
    s.close()


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


@pytest.mark.parametrize(
    "args",
    [("drain", "h1"), ("undrain", "h1"), ("drains",), ("plans",), ("approve", "1"), ("migrations",)],
    ids=lambda a: " ".join(a),
)
def test_no_service_is_exit_3_naming_the_address_and_no_store_is_created(
    cfg_file: Path, store_path: Path, args: tuple[str, ...]
) -> None:
    r = run(cfg_file, *args)
    assert r.exit_code == 3, r.output
    assert "error: no service answers at http://127.0.0.1:" in r.stderr
    assert "--local" in r.stderr  # it says how to act when no service runs at all
    assert not store_path.exists() and not store_path.parent.exists()


def test_an_explicit_api_that_does_not_answer_is_exit_3_naming_it(cfg_file: Path, store: Store) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = run(cfg_file, "drain", "h1", "--api", url)
    assert r.exit_code == 3
    assert f"no service answers at {url}" in r.stderr
    assert store.drains() == ()  # nothing written anywhere


def test_local_needs_an_existing_store_and_creates_none(cfg_file: Path, store_path: Path) -> None:
    r = run(cfg_file, "drain", "h1", "--local")
    assert r.exit_code == 3, r.output
    assert f"no store at {store_path}" in r.stderr
    assert not store_path.exists() and not store_path.parent.exists()


def test_local_drain_writes_to_the_store_as_the_cli_user_and_says_so(cfg_file: Path, store: Store) -> None:
    r = run(cfg_file, "drain", "h1", "--note", "disk swap", "--local")
    assert r.exit_code == 0, r.output
    opened, where = r.stdout.splitlines()
    assert opened == "h1: drain 1 opened"
    assert where.startswith("h1: written to sqlite:///") and where.endswith("acts on the drain")
    (d,) = store.drains()
    assert (d.host, d.requested_by, d.note) == ("h1", "alice", "disk swap")
    (entry,) = store.audit_log()
    assert (entry.actor, entry.action) == ("alice", "drain.create")


def test_sudo_user_is_the_actor_under_sudo(cfg_file: Path, store: Store) -> None:
    assert run(cfg_file, "drain", "h2", "--local", SUDO_USER="bob", USER="root").exit_code == 0
    assert store.drains()[0].requested_by == "bob"


def test_local_is_refused_while_an_instance_leads(cfg_file: Path, store: Store) -> None:
    holder = f"node-a/1/x@http://127.0.0.1:{free_port()}"
    assert store.acquire_lease(holder, 60.0) is not None
    for args in (("drain", "h1"), ("drains",), ("plans",), ("migrations",)):
        r = run(cfg_file, *args, "--local")
        assert r.exit_code == 1, (args, r.output)
        assert f"--local refused: a service leads (holder {holder}, epoch 1)" in r.stderr
    assert store.drains() == ()


def test_local_wait_is_refused(cfg_file: Path, store: Store) -> None:
    r = run(cfg_file, "drain", "h1", "--local", "--wait")
    assert r.exit_code == 2
    assert "--wait: with --local no service runs" in r.stderr
    assert store.drains() == ()


def test_local_undrain_and_drains(cfg_file: Path, store: Store) -> None:
    store.create_drain("h1", "ops", NOW)
    r = run(cfg_file, "undrain", "h1", "--local")
    assert (r.exit_code, r.stdout) == (0, "h1: drain 1 cancelled\n")
    assert store.drains()[0].closed_by == "alice"
    listed = json.loads(run(cfg_file, "drains", "--json", "--local").stdout)
    assert [(d["host"], d["state"]) for d in listed] == [("h1", "cancelled")]


def test_local_plans_approve_and_reject(cfg_file: Path, store: Store) -> None:
    pid = store.save_plan(plan(), "recommend", NOW, fence=fence_of(store)).id
    assert store.release_lease("test-leader")  # that leader has gone: --local may act
    assert json.loads(run(cfg_file, "plans", "--json", "--local").stdout)[0]["id"] == pid
    assert "web-2" in run(cfg_file, "plans", "show", str(pid), "--local").stdout
    assert run(cfg_file, "approve", str(pid), "--move", "0", "--local").exit_code == 0
    assert run(cfg_file, "reject", str(pid), "--local").exit_code == 0
    row = store.get_plan(pid)
    assert (row.status, row.decided_by) == (PlanStatus.REJECTED, "alice")
    assert [m.status for m in row.moves] == [MoveStatus.REJECTED, MoveStatus.REJECTED]
    r = run(cfg_file, "approve", str(pid), "--local")
    assert (r.exit_code, r.stderr.splitlines()[-1]) == (
        1,
        f"error: plan {pid} is rejected; it can no longer be approved or rejected",
    )
    assert run(cfg_file, "approve", "99", "--local").exit_code == 2


def test_local_migrations_are_read_from_the_journal(cfg_file: Path, store: Store) -> None:
    store.save_record(record("m1", vm="db-1", state=MoveState.SUCCEEDED))
    listed = json.loads(run(cfg_file, "migrations", "--json", "--local").stdout)
    assert [m["id"] for m in listed] == ["m1"]


def test_local_abort_says_nothing_migrates_without_a_service(cfg_file: Path, store: Store) -> None:
    store.save_record(record("m1", state=MoveState.MIGRATING))
    r = run(cfg_file, "abort", "m1", "--local")
    assert r.exit_code == 1
    assert "abort needs the service that runs migration m1" in r.stderr
