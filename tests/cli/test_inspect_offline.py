"""`balancer status`, `snapshot` and `plan` beyond the service's view (test_inspect_cmd.py): the status
table as drawn, no service answering any of them (exit 3, nothing written), ``--local`` without a store,
and planning offline on a recorded snapshot file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from balancer.cli import inspect_cmd
from balancer.model import snapshot_to_json
from balancer.store import Store
from tests.builders import host, snapshot, vm
from tests.cli.running import config, service

app = typer.Typer()
inspect_cmd.register(app)


def rows(text: str) -> dict[str, list[str]]:
    """The cells of each table row, by its first cell (plain tables: columns two or more spaces apart)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) > 1 and cells[0]:
            out.setdefault(cells[0], cells)
    return out


def run(cfg: Path | None, *args: str) -> Result:
    argv = [*args, "--config", str(cfg)] if cfg is not None else list(args)
    env = {"BALANCER_API": None, "BALANCER_TOKEN": None, "COLUMNS": "200"}
    return CliRunner().invoke(app, argv, env=env)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One `balancer run` (automation off: it only collects) for the tests that read through the API."""
    tmp = tmp_path_factory.mktemp("inspect")
    cfg = config(tmp, automation="off")
    with service(cfg):
        yield cfg, tmp


def test_status_shows_every_host_as_the_service_sees_it(served: tuple[Path, Path]) -> None:
    cfg, _ = served
    r = run(cfg, "status")
    assert r.exit_code == 0, r.output
    assert "3 hosts" in r.stdout
    table = rows(r.stdout)
    assert [table[h][1] for h in ("a", "b", "c")] == ["up", "up", "up"]
    assert [table[h][4] for h in ("a", "b", "c")] == [
        "5",
        "2",
        "1",
    ]  # VMs per host, as the test driver has them
    assert "web1" not in r.stdout  # no VM table without --vms


def test_a_service_that_does_not_answer_is_exit_3(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    for args in (("status",), ("snapshot", "--out", str(tmp_path / "s.json")), ("plan",)):
        r = run(cfg, *args)
        assert r.exit_code == 3, (args, r.output)
        assert "no service answers at http://127.0.0.1:" in r.output
    assert not (tmp_path / "s.json").exists()


def test_local_needs_an_existing_store_and_no_leader(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    r = run(cfg, "status", "--local", "--sample-seconds", "0")
    assert r.exit_code == 3 and "--local" in r.output
    assert not (tmp_path / "j.db").exists()
    with Store.open(f"sqlite:///{tmp_path / 'j.db'}") as store:
        assert store.acquire_lease("node-x/1/abc@http://10.9.9.9:8787", 3600) is not None
        r = run(cfg, "status", "--local", "--sample-seconds", "0")
    assert r.exit_code == 1
    assert "--local refused: a service leads" in r.output and "--api http://10.9.9.9:8787" in r.output


def write_snapshot(path: Path) -> Path:
    snap = snapshot(
        hosts=[host("h1", cpus=4.0), host("h2"), host("h3")],
        vms=[vm("busy-1", "h1", cpu_cores=3.0), vm("busy-2", "h1", cpu_cores=3.0), vm("calm", "h2")],
    )
    path.write_text(snapshot_to_json(snap))
    return path


def test_plan_on_a_recorded_snapshot_needs_no_service_store_or_host(tmp_path: Path) -> None:
    snap = write_snapshot(tmp_path / "hot.json")
    r = run(None, "plan", "--snapshot", str(snap))
    assert r.exit_code == 0, r.output
    assert "imbalance" in r.stdout and "busy-" in r.stdout  # h1 at 150 %: one of its VMs moves
    drained = json.loads(run(None, "plan", "--snapshot", str(snap), "--drain", "h2", "--json").stdout)
    assert {m["vm"] for m in drained["moves"] if m["source"] == "h2"} | {
        s["name"] for s in drained["skips"]
    } >= {"calm"}


def test_plan_on_a_snapshot_refuses_unknown_drain_hosts_and_unreadable_files(tmp_path: Path) -> None:
    snap = write_snapshot(tmp_path / "hot.json")
    r = run(None, "plan", "--snapshot", str(snap), "--drain", "h9")
    assert r.exit_code == 2
    assert "--drain: 'h9' is not a host of this cluster (known: h1, h2, h3)" in r.output
    r = run(None, "plan", "--snapshot", str(tmp_path / "missing.json"))
    assert r.exit_code == 2
    assert f"--snapshot {tmp_path / 'missing.json'}: cannot be read" in r.output
