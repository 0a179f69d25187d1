"""The parts of `balancer demo` and `balancer migrate` that run without the lab: the demo's config is one
`balancer run` accepts, its host line and readiness wait read a real service; `migrate --local` finds a
VM on real (test-driver) hosts and tells a missing VM from an unreachable host; `migrate` checks its
hosts before asking the service, and its progress line says where a move is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from balancer.api.schemas import MigrationOut, ProgressNow
from balancer.cli import demo_cmd, migrate_cmd
from balancer.cli.migrate_local import find_vm
from balancer.config import load
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.hypervisor import libvirt_factory
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE
from balancer.model import MoveState
from balancer.store import Store
from tests.api.harness import free_port
from tests.cli.running import TOKEN, config, service
from tests.service.conftest import driver_hosts

MIB = 2**20


def test_the_demos_config_is_valid_for_the_service_with_the_labs_hosts(tmp_path: Path) -> None:
    hosts = yaml.safe_dump({"hosts": driver_hosts()})
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(demo_cmd._config(hosts, tmp_path, "t" * 32)))
    cfg = load(path, for_service=True)  # as `balancer run` loads it
    assert [h.name for h in cfg.hosts] == ["a", "b", "c"]
    assert (cfg.automation, cfg.collection.interval_seconds, cfg.thresholds.cpu_high) == ("auto", 5, 0.6)
    assert cfg.store.url == f"sqlite:///{tmp_path}/balancer.db"
    assert cfg.api.listen == f"127.0.0.1:{demo_cmd.PORT}" and cfg.api.tokens[0].secret() == "t" * 32


def test_the_demos_host_line_and_readiness_wait_read_a_real_service(tmp_path: Path) -> None:
    cfg = config(tmp_path, automation="off")
    with service(cfg) as url:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            demo_cmd._wait_ready(client, alive, timeout=30)  # returns: the service is ready
        finally:
            alive.kill()
            alive.wait()
        line = demo_cmd._hosts_line(client)
        client.close()
    parts = line.split(" | ")
    assert [p.split("[")[0] for p in parts] == ["a", "b", "c"]
    assert parts[0].startswith("a[up] cpu ") and parts[0].endswith(" vms 5")


def test_the_demo_gives_up_when_its_service_dies_before_it_is_ready() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    client = httpx.Client(base_url=f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(typer.Exit) as stopped:
        demo_cmd._wait_ready(client, dead, timeout=30)
    assert stopped.value.exit_code == EXIT_FAILED
    client.close()


def hypervisors(extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    uris = {h["name"]: h["uri"] for h in driver_hosts()} | (extra or {})
    factory = libvirt_factory({n: MigrationEndpoint(n, u, u) for n, u in uris.items()})
    return {n: factory(n) for n in uris}


def test_migrate_local_finds_where_a_vm_runs() -> None:
    hvs = hypervisors()
    assert find_vm("web1", ["a", "b", "c"], hvs) == "a"
    assert find_vm("lone", ["a", "b", "c"], hvs) == "c"


def test_a_vm_on_no_host_is_bad_input_and_one_behind_an_unreachable_host_is_exit_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hvs = hypervisors({"gone": f"qemu+tcp://127.0.0.1:{free_port()}/system"})
    with pytest.raises(SystemExit) as missing:
        find_vm("nope", ["a", "b"], hvs)
    assert missing.value.code == EXIT_INPUT
    assert capsys.readouterr().err == "error: no running VM 'nope' on any configured host\n"
    with pytest.raises(SystemExit) as unreachable:
        find_vm("nope", ["a", "gone"], hvs)
    assert unreachable.value.code == EXIT_UNREACHABLE
    assert capsys.readouterr().err.startswith("error: nope not found; could not ask gone: ")


def app() -> typer.Typer:
    a = typer.Typer()
    migrate_cmd.register(a)

    @a.command("noop")
    def _noop() -> None:  # a second command keeps `migrate` a subcommand
        pass

    return a


def migrate(cfg: Path, *args: str) -> Result:
    env = {"BALANCER_API": None, "BALANCER_TOKEN": None, "COLUMNS": "200"}
    return CliRunner().invoke(app(), ["migrate", *args, "--config", str(cfg)], env=env)


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
    assert (rec.source, rec.target, rec.bandwidth_mib_s, rec.state) == ("b", "c", 7, MoveState.FAILED)
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
