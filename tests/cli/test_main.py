"""`balancer` itself (cli/__init__.py): every command group registered, errors mapped to one clear line and
an exit code (2 bad input, 1 a failure), never a traceback; `config check` and `config example` as the
operator runs them; `run`'s own argument checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from balancer import __version__
from balancer.cli import app, main
from balancer.config import Config, parse
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_OK
from tests.service.conftest import driver_hosts


def balancer(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``balancer ARGV`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as ended:
        main(list(argv))
    out, err = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else EXIT_OK if code is None else EXIT_FAILED), out, err


def good_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"hosts": driver_hosts(), "store": {"url": f"sqlite:///{tmp_path}/b.db"}}))
    return path


def test_every_command_group_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = balancer("--help", capsys=capsys)
    assert code == EXIT_OK
    commands = {
        "status", "snapshot", "plan", "drain", "undrain", "drains", "plans", "approve", "reject",
        "migrations", "abort", "migrate", "run", "demo", "config", "lab",
    }  # fmt: skip
    listed = {line.split()[1] for line in out.splitlines() if line.startswith("│ ") and len(line.split()) > 1}
    assert commands <= listed, commands - listed
    assert {c.name for c in app.registered_commands} >= {"status", "drain", "migrate", "run"}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert balancer("--version", capsys=capsys) == (EXIT_OK, f"balancer {__version__}\n", "")


def test_a_bad_config_file_is_exit_2_with_every_problem_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"automation": "sometimes", "collection": {"interval_seconds": -1}}))
    code, out, err = balancer("drains", "--config", str(path), capsys=capsys)
    assert code == EXIT_INPUT and out == ""
    assert err.startswith(f"{path}: 2 problem(s):\n")
    assert "automation: 'sometimes'" in err and "collection.interval_seconds: -1" in err
    assert "Traceback" not in err


def test_an_unreadable_snapshot_file_is_exit_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"taken_at": "yesterday"}')
    code, out, err = balancer("plan", "--snapshot", str(broken), capsys=capsys)
    assert code == EXIT_INPUT and out == ""
    assert err.startswith("error: ") and "Traceback" not in err


def test_config_check_prints_the_effective_config_or_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_config(tmp_path)
    code, out, _ = balancer("config", "check", str(path), capsys=capsys)
    assert code == EXIT_OK
    assert out.startswith(f"# {path}: valid; effective configuration with defaults")
    effective = yaml.safe_load(out)
    assert parse(effective) == parse(yaml.safe_load(path.read_text()))  # nothing lost on the way
    code, out, _ = balancer("config", "check", str(path), "--json", capsys=capsys)
    assert code == EXIT_OK and json.loads(out)["hosts"][0]["name"] == "a"
    hostless = tmp_path / "hostless.yaml"
    hostless.write_text("automation: auto\n")
    code, _, err = balancer("config", "check", str(hostless), capsys=capsys)
    assert code == EXIT_INPUT and "hosts" in err


def test_config_example_is_a_valid_config_of_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = balancer("config", "example", capsys=capsys)
    assert code == EXIT_OK
    example, defaults = parse(yaml.safe_load(out)).model_dump(), Config().model_dump()
    assert example["hosts"], "the example shows how hosts are written"
    assert {k: v for k, v in example.items() if k != "hosts"} == {
        k: v for k, v in defaults.items() if k != "hosts"
    }
    assert out.count("\n  # ") > 20  # every key carries its one-line why


def test_run_refuses_an_unknown_log_format_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = balancer(
        "run", "--config", str(good_config(tmp_path)), "--log-format", "xml", capsys=capsys
    )
    assert code == EXIT_INPUT
    assert err == "--log-format: 'xml' is not one of 'text' or 'json'\n"
    assert not (tmp_path / "b.db").exists(), "nothing was started"


def test_the_installed_entry_point_maps_errors_the_same_way(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    ran = subprocess.run(
        [sys.executable, "-m", "balancer", "drains", "--config", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == EXIT_INPUT
    assert str(missing) in ran.stderr and "Traceback" not in ran.stderr


def test_the_lab_commands_are_reached_through_the_lazily_registered_group(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = balancer("lab", "--help", capsys=capsys)
    assert code == EXIT_OK
    listed = {line.split()[1] for line in out.splitlines() if line.startswith("│ ") and len(line.split()) > 1}
    assert {"up", "down", "status", "check-clean"} <= listed
    code, _, err = balancer("lab", "status", "--dir", "/nonexistent/balancer-lab", capsys=capsys)
    assert code == EXIT_FAILED and "start one with `balancer lab up`" in err
