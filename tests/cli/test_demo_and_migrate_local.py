"""The parts of `balancer demo` and `migrate --local` that run without the lab: the demo's config is one
`balancer run` accepts, its host line and readiness wait read a real service; `migrate --local` finds a
VM on real (test-driver) hosts and tells a missing VM from an unreachable host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import typer
import yaml

from balancer.cli import demo_cmd
from balancer.cli.migrate_local import find_vm
from balancer.config import load
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.libvirt_hypervisor import libvirt_factory
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE
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
