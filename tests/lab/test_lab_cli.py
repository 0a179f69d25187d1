"""`balancer lab` commands, on the shared lab and on a second lab alongside it."""

from __future__ import annotations

from contextlib import closing

import pytest
import yaml
from typer.testing import CliRunner

from balancer.lab import Lab
from balancer.lab.cli import app

pytestmark = pytest.mark.lab
runner = CliRunner()


def test_up_refuses_with_exit_2_when_a_lab_exists(lab: Lab) -> None:
    result = runner.invoke(app, ["up", "--dir", str(lab.directory)])
    assert result.exit_code == 2, result.output
    assert "already exists" in result.output


def test_config_prints_the_hosts_section(lab: Lab) -> None:
    result = runner.invoke(app, ["config", "--dir", str(lab.directory), "--memory-mib", "2048"])
    assert result.exit_code == 0, result.output
    hosts = yaml.safe_load(result.stdout)["hosts"]
    assert [h["name"] for h in hosts] == ["h1", "h2", "h3"]
    for entry, host in zip(hosts, lab.hosts, strict=True):
        assert entry == {
            "name": host.name,
            "uri": host.control_uri,
            "migration_uri": f"qemu+tcp://{host.name}/system",
            "labels": {"lab": "true"},
            "capacity": {"cpus": 1.0, "memory_mib": 2048},
        }


def test_status_shows_every_host(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BALANCER_LAB_DIR", str(lab.directory))  # the default --dir
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    for host in lab.hosts:
        assert host.name in result.output and host.address in result.output


def test_a_second_lab_runs_beside_the_first_and_leaves_nothing(lab: Lab, tmp_path) -> None:
    second = tmp_path / "second"
    result = runner.invoke(app, ["up", "--hosts", "1", "--dir", str(second)])
    assert result.exit_code == 0, result.output
    try:
        other = Lab.open(second)
        assert other.layout.tag != lab.layout.tag
        with closing(other.connect("h1")) as conn:
            assert conn.getHostname() == "h1"
        assert other.exec("h1", "cat", "/etc/hosts").stdout.split()[-2:] == [other.hosts[0].address, "h1"]
    finally:
        result = runner.invoke(app, ["down", "--dir", str(second)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["check-clean", "--dir", str(second)])
    assert result.exit_code == 0, result.output
    with closing(lab.connect("h1")) as conn:  # the first lab is untouched
        assert conn.getHostname() == "h1"


def test_check_clean_lists_what_is_left_with_exit_1(lab: Lab) -> None:
    result = runner.invoke(app, ["check-clean", "--dir", str(lab.directory)])
    assert result.exit_code == 1
    assert "network namespace" in result.output and "process" in result.output
