"""What the operator commands print, against a real API server on loopback: drains marked blocked or
overdue, a `drain --wait` that ends cancelled or overdue, plans with each move's loads and detail,
moves approved one by one, the journal with libvirt's errors, and the same bodies as JSON."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from balancer.cli.ops_cmd import register
from balancer.model import MoveState
from balancer.reasons import Reason
from balancer.store import Store
from balancer.store.records import Blocker, DrainProgress, DrainState, MoveStatus
from tests.api.harness import READ_TOKEN, plan
from tests.cli.drain_steps import opened_drain
from tests.leader import fence_of
from tests.store.builders import record

GIB = 2**30
app = typer.Typer()
register(app)


def run(cfg_file: Path, *args: str) -> Result:
    env = {"BALANCER_API": None, "BALANCER_TOKEN": None, "COLUMNS": "220"}
    return CliRunner().invoke(app, [*args, "--config", str(cfg_file)], env=env)


def rows(text: str) -> dict[str, list[str]]:
    """Table rows by their first cell (the commands print plain tables: columns split by 2+ spaces)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = [c for c in line.strip().split("  ") if c.strip()]
        if len(cells) > 1:
            out.setdefault(cells[0].strip(), [c.strip() for c in cells])
    return out


def test_drains_mark_blocked_and_overdue_ones_and_show_their_numbers(cfg_file: Path, store: Store) -> None:
    now = time.time()
    blocked, _ = store.create_drain("h1", "ops", now - 100)
    overdue, _ = store.create_drain("h2", "ops", now - 7200, deadline=now - 60)
    done, _ = store.create_drain("h3", "ops", now - 50)
    blocker = Blocker("db-1", Reason.NO_MEMORY, "no host with 64 GiB free")
    fence = fence_of(store)
    store.update_drain_progress(
        blocked.id, DrainProgress(1, 70 * GIB, (), 2, 1, None, (blocker,)), now, fence=fence
    )
    store.update_drain_progress(
        overdue.id, DrainProgress(2, 3 * GIB, ("web-1",), 0, 0, 3700.0), now, fence=fence
    )
    store.finish_drain(done.id, now, progress=DrainProgress(0, 0, (), 4, 0, 0.0), fence=fence)
    r = run(cfg_file, "drains")
    assert r.exit_code == 0, r.output
    table = rows(r.stdout)
    assert table["h1"][2:3] == ["open (blocked)"] and "70.0 GiB" in table["h1"]
    assert table["h2"][2:3] == ["open (overdue)"] and "1h01m" in table["h2"]  # the ETA
    assert table["h3"][2:3] == ["done"]
    assert r.stdout.splitlines()[-1] == "h1: blocked: vm db-1: no host with 64 GiB free (no_memory)"
    listed = json.loads(run(cfg_file, "drains", "--json").stdout)
    assert [(d["host"], d["state"], d["blocked"], d["overdue"]) for d in listed] == [  # newest first
        ("h3", "done", False, False),
        ("h1", "open", True, False),
        ("h2", "open", False, True),
    ]


def test_drain_wait_ends_with_exit_1_when_the_drain_is_cancelled_meanwhile(
    cfg_file: Path, store: Store
) -> None:
    def undrain() -> None:
        d = opened_drain(store)
        store.close_drain(d.id, DrainState.CANCELLED, "bob", time.time())

    other = threading.Thread(target=undrain)
    other.start()
    r = run(cfg_file, "drain", "h1", "--wait", "--interval", "0.05")
    other.join()
    assert r.exit_code == 1
    assert r.stdout.splitlines()[-1] == "h1: drain 1 was cancelled by bob"


def test_drain_wait_stops_at_the_deadline_saying_what_is_left(cfg_file: Path, store: Store) -> None:
    d, _ = store.create_drain("h2", "ops", time.time() - 7200, deadline=time.time() - 1)
    store.update_drain_progress(
        d.id, DrainProgress(2, 3 * GIB, ("web-1",), 1, 0, 600.0), time.time(), fence=fence_of(store)
    )
    r = run(cfg_file, "drain", "h2", "--wait", "--interval", "0.05")
    assert r.exit_code == 1
    assert "h2: drain 1 already open since" in r.stdout
    assert f"h2: drain {d.id} is past its deadline" in r.stdout
    assert r.stdout.rstrip().endswith("2 VMs, 3.0 GiB left, moving web-1, ETA 10m00s")


def test_plans_show_each_moves_loads_detail_and_status(cfg_file: Path, store: Store) -> None:
    pid = store.save_plan(plan(), "recommend", time.time(), fence=fence_of(store)).id
    shown = run(cfg_file, "plans", "show", str(pid))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"plan {pid}: proposed (recommend), created ")
    assert lines[0].endswith("imbalance 0.300 -> 0.100, 18.0 GiB to copy")
    table = rows(shown.stdout)
    assert table["0"][1:4] == ["web-1", "h1 -> h2", "balance"]
    assert "cpu 0.80->0.55" in table["0"] and "cpu 0.10->0.20" in table["0"] and "1m30s" in table["0"]
    assert "  1: web-2: h1 cpu 0.80 -> 0.55" in lines
    assert lines[-1] == "skip vm db-1: no_memory: no host with 64 GiB free"
    data = json.loads(run(cfg_file, "plans", "show", str(pid), "--json").stdout)
    assert [(m["index"], m["vm"], m["status"]) for m in data["moves"]] == [
        (0, "web-1", "proposed"),
        (1, "web-2", "proposed"),
    ]


def test_moves_are_approved_one_at_a_time_and_the_plan_list_counts_them(cfg_file: Path, store: Store) -> None:
    pid = store.save_plan(plan(), "recommend", time.time(), fence=fence_of(store)).id
    r = run(cfg_file, "approve", str(pid), "--move", "0")
    assert (r.exit_code, r.stdout) == (0, f"plan {pid} move 0 (web-1: h1 -> h2) approved\n")
    assert [m.status for m in store.get_plan(pid).moves] == [MoveStatus.APPROVED, MoveStatus.PROPOSED]
    listed = rows(run(cfg_file, "plans").stdout)
    assert "1 approved, 1 proposed" in listed[str(pid)]
    assert run(cfg_file, "plans", "--status", "approved").stdout.strip() == "no plans"
    missing = run(cfg_file, "approve", str(pid), "--move", "5")
    assert missing.exit_code == 2 and f"plan {pid} has no move 5 (it has 2) [HTTP 404]" in missing.output


def test_migrations_show_outcomes_bytes_and_libvirts_error(cfg_file: Path, store: Store) -> None:
    store.save_record(
        record(
            "m-bad",
            vm="db-1",
            source="h1",
            target="h3",
            state=MoveState.FAILED,
            outcome=Reason.MIGRATION_FAILED,
            disk_bytes=8 * GIB,
            memory_bytes=GIB,
            started_at=time.time(),
            error_code=9,
            error_message="operation failed: migration job: unexpectedly failed",
        )
    )
    store.save_record(record("m-ok", vm="web-1", source="h1", target="h2", state=MoveState.SUCCEEDED))
    r = run(cfg_file, "migrations")
    assert r.exit_code == 0, r.output
    table = rows(r.stdout)
    assert table["m-bad"][1:6] == ["db-1", "h1 -> h3", "balance", "failed", "migration_failed"]
    assert "9.0 GiB" in table["m-bad"]
    assert table["m-bad"][-1] == "operation failed: migration job: unexpectedly failed"
    failed = json.loads(run(cfg_file, "migrations", "--state", "failed", "--json").stdout)
    assert [(m["id"], m["error"]["code"]) for m in failed] == [("m-bad", 9)]
    assert run(cfg_file, "migrations", "--vm", "nobody").stdout.strip() == "no migrations"


def test_undrain_cancels_an_open_drain_or_puts_a_drained_host_back_in_service(
    cfg_file: Path, store: Store
) -> None:
    d, _ = store.create_drain("h1", "ops", time.time())
    r = run(cfg_file, "undrain", "h1")
    assert (r.exit_code, r.stdout) == (0, f"h1: drain {d.id} cancelled\n")
    done, _ = store.create_drain("h2", "ops", time.time())
    store.finish_drain(done.id, time.time(), fence=fence_of(store))
    r = run(cfg_file, "undrain", "h2")
    assert (r.exit_code, r.stdout) == (0, f"h2: back in service (its drain {done.id} had finished)\n")
    assert store.drains(host="h2")[0].state == DrainState.RELEASED
    r = run(cfg_file, "undrain", "h2")  # the service answers not_drained: nothing left to undo
    assert (r.exit_code, r.stdout) == (0, "h2: no open drain; nothing to undrain\n")
    r = run(cfg_file, "undrain", "h9")
    assert r.exit_code == 2 and "HOST: 'h9' is not a configured host; known: h1, h2, h3" in r.output


def test_abort_of_a_finished_migration_is_refused_with_exit_1(cfg_file: Path, store: Store) -> None:
    store.save_record(record("m-old", vm="web-2", state=MoveState.SUCCEEDED))
    r = run(cfg_file, "abort", "m-old")
    assert r.exit_code == 1
    assert "migration m-old is already succeeded; there is nothing to abort [HTTP 409]" in r.output
    r = run(cfg_file, "abort", "m-none")
    assert (
        r.exit_code == 2
        and "migration 'm-none' is not in the journal (no id is or starts with it) [HTTP 404]" in r.output
    )


def test_reading_commands_take_a_read_token(cfg_file: Path, store: Store) -> None:
    store.create_drain("h3", "ops", time.time())
    env = {"BALANCER_API": None, "BALANCER_TOKEN": READ_TOKEN, "COLUMNS": "220"}
    r = CliRunner().invoke(app, ["drains", "--config", str(cfg_file)], env=env)
    assert r.exit_code == 0 and "h3" in rows(r.stdout)
    r = CliRunner().invoke(app, ["undrain", "h3", "--config", str(cfg_file)], env=env)
    assert r.exit_code == 2 and "has role read" in r.output
    assert store.drains(host="h3")[0].state == DrainState.OPEN


def test_drain_wait_against_a_real_service_ends_at_the_planners_blocker(tmp_path: Path) -> None:
    """The whole path an operator takes: `balancer run` on test-driver hosts (which cannot migrate, so the
    drain's move fails its pre-check and the VM is quarantined), `drain --wait` following it until the
    service reports the drain blocked, with the planner's reason for the VM left."""
    from tests.cli.running import config as service_config
    from tests.cli.running import service

    cfg = service_config(tmp_path, automation="auto", thresholds={"hold_ticks": 1})
    with service(cfg):
        env = {"BALANCER_API": None, "BALANCER_TOKEN": None, "COLUMNS": "220"}
        r = CliRunner().invoke(
            app, ["drain", "c", "--wait", "--interval", "0.2", "--config", str(cfg)], env=env
        )
    assert r.exit_code == 1, r.output
    assert r.stdout.startswith("c: drain 1 opened")
    assert "c: drain 1 is blocked: 1 VMs" in r.stdout
    assert "  vm lone: " in r.stdout  # the blocker, with the planner's reason code in brackets
    with Store.open(f"sqlite:///{tmp_path / 'j.db'}") as store:
        (rec,) = store.records(vm="lone")
        assert (rec.source, rec.reason, rec.drain_id, rec.state.final) == ("c", Reason.DRAIN, 1, True)
