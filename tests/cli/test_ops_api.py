"""The operator commands against a real uvicorn server running the API (127.0.0.1, a free port)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from balancer.api.app import ApiContext
from balancer.cli.ops_cmd import register
from balancer.model import MoveState
from balancer.reasons import Reason
from balancer.store import Store
from balancer.store.records import Blocker, DrainProgress, PlanStatus
from tests.api.harness import (
    NOW,
    READ_TOKEN,
    WRITE_TOKEN,
    free_port,
    plan,
    stand_in,
)
from tests.cli.drain_steps import report_then_close
from tests.leader import fence_of
from tests.store.builders import record

app = typer.Typer()
register(app)


def run(cfg_file: Path | None, *args: str, **env: str | None) -> Result:
    argv = [*args, "--config", str(cfg_file)] if cfg_file else list(args)
    environ = {"BALANCER_API": None, "BALANCER_TOKEN": None, "COLUMNS": "200", **env}
    return CliRunner().invoke(app, argv, env=environ)


def test_drain_opens_a_drain_audited_with_the_token_name(cfg_file: Path, store: Store) -> None:
    r = run(cfg_file, "drain", "h1", "--deadline", "2h", "--note", "RAM swap")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("h1: drain 1 opened; deadline ")
    assert "note:" not in r.stderr  # the service answered: no store fallback
    (d,) = store.drains()
    assert (d.host, d.requested_by, d.note) == ("h1", "ops", "RAM swap")
    assert d.deadline is not None and abs(d.deadline - (time.time() + 7200)) < 60
    again = run(cfg_file, "drain", "h1")
    assert again.exit_code == 0
    assert "h1: drain 1 already open since" in again.stdout


def test_drains_show_progress_and_blockers(cfg_file: Path, store: Store) -> None:
    d, _ = store.create_drain("h1", "ops", NOW)
    blocker = Blocker("db-1", Reason.NO_MEMORY, "no host with 64 GiB free")
    store.update_drain_progress(
        d.id, DrainProgress(3, 30 * 2**30, ("web-1",), 1, 0, 600.0, (blocker,)), NOW, fence=fence_of(store)
    )
    r = run(cfg_file, "drains")
    assert r.exit_code == 0, r.output
    assert "h1" in r.stdout and "30.0 GiB" in r.stdout and "10m00s" in r.stdout
    assert "h1: blocked: vm db-1: no host with 64 GiB free (no_memory)" in r.stdout
    listed = json.loads(run(cfg_file, "drains", "--json").stdout)
    assert listed[0]["progress"]["blockers"][0]["vm"] == "db-1"


def test_undrain_cancels_and_is_quiet_when_nothing_is_open(cfg_file: Path, store: Store) -> None:
    store.create_drain("h2", "ops", NOW)
    r = run(cfg_file, "undrain", "h2")
    assert (r.exit_code, r.stdout) == (0, "h2: drain 1 cancelled\n")
    assert store.drains()[0].closed_by == "ops"
    r = run(cfg_file, "undrain", "h2")
    assert (r.exit_code, r.stdout) == (0, "h2: no open drain; nothing to undrain\n")


def test_plans_list_show_approve_and_reject(cfg_file: Path, store: Store) -> None:
    pid = store.save_plan(plan(), "recommend", NOW, fence=fence_of(store)).id
    r = run(cfg_file, "plans", "--status", "proposed")
    assert r.exit_code == 0, r.output
    assert f"{pid}" in r.stdout and "2 proposed" in r.stdout
    shown = run(cfg_file, "plans", "show", str(pid))
    assert "web-1" in shown.stdout and "h1 -> h2" in shown.stdout and "cpu 0.80->0.55" in shown.stdout
    assert "skip vm db-1: no_memory: no host with 64 GiB free" in shown.stdout
    assert json.loads(run(cfg_file, "plans", "show", str(pid), "--json").stdout)["id"] == pid

    r = run(cfg_file, "reject", str(pid), "--move", "1")
    assert (r.exit_code, r.stdout) == (0, f"plan {pid} move 1 (web-2: h1 -> h3) rejected\n")
    r = run(cfg_file, "approve", str(pid))
    assert (r.exit_code, r.stdout) == (0, f"plan {pid} approved; moves: 1 approved, 1 rejected\n")
    assert store.get_plan(pid).decided_by == "ops"
    r = run(cfg_file, "reject", str(pid))
    assert r.exit_code == 0
    r = run(cfg_file, "approve", str(pid))
    assert r.exit_code == 1
    assert f"plan {pid} is rejected; it can no longer be approved or rejected [HTTP 409]" in r.stderr
    assert store.get_plan(pid).status == PlanStatus.REJECTED


def test_unknown_plan_is_exit_2(cfg_file: Path) -> None:
    r = run(cfg_file, "plans", "show", "42")
    assert r.exit_code == 2
    assert "plan 42 does not exist [HTTP 404]" in r.stderr


def test_migrations_and_abort(cfg_file: Path, store: Store, ctx: ApiContext) -> None:
    store.save_record(record("m-run", vm="db-1", source="h1", target="h3", state=MoveState.MIGRATING))
    r = run(cfg_file, "migrations", "--json")
    assert [m["id"] for m in json.loads(r.stdout)] == ["m-run"]
    assert "db-1" in run(cfg_file, "migrations", "--state", "migrating").stdout
    stand_in(ctx).aborts.running.add("m-run")
    r = run(cfg_file, "abort", "m-run")
    assert (r.exit_code, r.stdout) == (0, "m-run: abort of db-1 (h1 -> h3) requested\n")
    assert run(cfg_file, "abort", "nope").exit_code == 2


def test_abort_on_a_follower_is_retried_at_the_leader_it_names(
    cfg_file: Path, store: Store, ctx: ApiContext
) -> None:
    store.save_record(record("m-run", state=MoveState.MIGRATING))
    stand_in(ctx).set(leader=False, epoch=None)
    leader = f"http://127.0.0.1:{free_port()}"  # the leader the lease names does not answer
    assert store.acquire_lease(f"node-b/1/x@{leader}", 60.0) is not None
    r = run(cfg_file, "abort", "m-run")
    assert r.exit_code == 3, r.output
    assert f"no service answers at {leader}" in r.stderr


def test_a_read_token_cannot_drain(cfg_file: Path, store: Store) -> None:
    r = run(cfg_file, "drain", "h1", BALANCER_TOKEN=READ_TOKEN)
    assert r.exit_code == 2
    assert "token 'viewer' has role read" in r.stderr and "--token" in r.stderr
    assert store.drains() == ()


def test_another_machine_needs_only_the_url_and_a_token(url: str, store: Store, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    r = run(missing, "drain", "h3", "--api", url, "--token", WRITE_TOKEN)
    assert r.exit_code == 0, r.output
    assert store.drains()[0].host == "h3"
    r = run(missing, "drain", "h9", BALANCER_API=url, BALANCER_TOKEN=WRITE_TOKEN)
    assert r.exit_code == 2
    assert "host: 'h9' is not a configured host; known: h1, h2, h3 [HTTP 422]" in r.stderr


def test_drain_wait_ends_when_the_service_closes_the_drain(cfg_file: Path, store: Store) -> None:
    def service() -> None:
        progress = DrainProgress(1, 2**30, ("web-1",), 2, 0, 5.0)
        report_then_close(store, progress, DrainProgress(0, 0, (), 3, 0, 0.0))

    worker = threading.Thread(target=service)
    worker.start()
    r = run(cfg_file, "drain", "h1", "--wait", "--interval", "0.05")
    worker.join()
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == "h1: drained (3 VMs moved)"


def test_drain_wait_stops_at_a_blocked_drain_and_prints_why(cfg_file: Path, store: Store) -> None:
    d, _ = store.create_drain("h1", "ops", NOW)
    blocker = Blocker("db-1", Reason.NO_MEMORY, "no host with 64 GiB free")
    store.update_drain_progress(
        d.id, DrainProgress(1, 70 * 2**30, (), 2, 0, None, (blocker,)), NOW, fence=fence_of(store)
    )
    r = run(cfg_file, "drain", "h1", "--wait", "--interval", "0.05")
    assert r.exit_code == 1
    assert "h1: drain 1 is blocked: 1 VMs, 70.0 GiB left, ETA -" in r.stdout
    assert "  vm db-1: no host with 64 GiB free (no_memory)" in r.stdout
