"""`balancer status`, `plan` and `snapshot` show the service's view (maintenance, drains, what holds a VM),
from its API; with `--local` (no service) the same view built here; never a different picture."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from balancer.cli import inspect_cmd
from balancer.model import MoveState, snapshot_from_json
from balancer.reasons import Reason
from balancer.store import Store
from balancer.store.records import DrainState
from tests.cli.running import config, service
from tests.leader import fence_of
from tests.store.builders import record

app = typer.Typer()
inspect_cmd.register(app)


def run(cfg: Path, *args: str) -> Result:
    env = {"BALANCER_API": None, "BALANCER_TOKEN": None, "COLUMNS": "200"}
    return CliRunner().invoke(app, [*args, "--config", str(cfg), "--sample-seconds", "0.2"], env=env)


def store_of(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'j.db'}")


def test_status_shows_the_services_host_states_and_what_holds_each_vm(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with store_of(tmp_path) as store:
        drain, _ = store.create_drain("c", "ops", store.now())
        finished = store.now() - 60  # web2 moved a minute ago: in cooldown for the next hour
        store.save_record(
            record("m1", vm="web2", source="b", target="a", state=MoveState.SUCCEEDED, finished_at=finished)
        )
    with service(cfg):
        r = run(cfg, "status", "--vms", "--json")
        text = run(cfg, "status", "--vms")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    states = {h["name"]: (h["state"], h["drain_id"]) for h in out["hosts"]}
    assert states["c"] == ("draining", drain.id) and states["a"][0] == "up"
    web2 = next(v for v in out["vms"] if v["name"] == "web2")
    assert web2["cooldown_until"] is not None and web2["cooldown_until"] > finished
    assert text.exit_code == 0 and "draining" in text.stdout and "cooldown until" in text.stdout


def test_plan_is_the_planner_on_the_services_view_and_stores_nothing(tmp_path: Path) -> None:
    cfg = config(tmp_path, automation="off")  # the service itself plans nothing
    with service(cfg):
        r = run(cfg, "plan", "--json")
        drained = run(cfg, "plan", "--drain", "b", "--json")
        bad = run(cfg, "plan", "--drain", "zz")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["moves"] and all(m["source"] == "a" for m in plan["moves"])  # a is the hot host
    assert "hotspot" in {m["reason"] for m in plan["moves"]}
    moves = json.loads(drained.stdout)["moves"]
    assert any(m["source"] == "b" and m["reason"] == "drain" for m in moves)
    assert all(m["target"] != "b" for m in moves)
    assert bad.exit_code == 2 and "--drain: 'zz' is not a configured host" in bad.output
    with store_of(tmp_path) as store:
        assert store.plans() == () and store.drains() == ()  # a dry run: nothing stored


def test_snapshot_records_the_services_view(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with store_of(tmp_path) as store:
        store.create_drain("b", "ops", store.now())
    out = tmp_path / "s.json"
    with service(cfg):
        r = run(cfg, "snapshot", "--out", str(out))
    assert r.exit_code == 0, r.output
    snap = snapshot_from_json(out.read_bytes())
    assert {h.name: h.state.value for h in snap.hosts}["b"] == "draining"
    replay = run(cfg, "plan", "--snapshot", str(out), "--json")
    assert replay.exit_code == 0 and json.loads(replay.stdout)["moves"] is not None


def test_no_service_is_exit_3_and_local_builds_the_same_view(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert run(cfg, "status").exit_code == 3
    with store_of(tmp_path) as store:
        drain, _ = store.create_drain("c", "ops", store.now())
        store.finish_drain(drain.id, store.now(), fence=fence_of(store))
        store.save_record(
            record("m1", vm="web1", source="a", target="b", state=MoveState.FAILED, finished_at=store.now(),
                   outcome=Reason.MIGRATION_FAILED)
        )  # fmt: skip
        store.release_lease("test-leader")
    r = run(cfg, "status", "--vms", "--json", "--local")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {h["name"]: h["state"] for h in out["hosts"]}["c"] == "maintenance"  # drained: held there
    web1 = next(v for v in out["vms"] if v["name"] == "web1")
    assert web1["quarantined_until"] is not None
    planned = json.loads(run(cfg, "plan", "--json", "--local").stdout)
    assert all(m["target"] != "c" and m["vm"] != "web1" for m in planned["moves"])


def test_local_is_refused_while_a_service_leads(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with service(cfg):
        r = run(cfg, "status", "--local")
    assert r.exit_code == 1 and "--local refused: a service leads" in r.output
    with store_of(tmp_path) as store:
        assert all(d.state != DrainState.OPEN for d in store.drains())
