"""deploy/systemd/balancer.service: `systemd-analyze security` rates it OK (<= 3.0), `systemd-analyze
verify` finds nothing, and it has the lifecycle the service implements (notify, reload, always restart).

systemd-analyze works offline, without a running systemd (Debian 12's systemd 252); the tests skip
where it is not installed (scripts/bootstrap.sh installs it)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "balancer.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def settings() -> dict[str, list[str]]:
    """Every key of the unit with all its values, in order (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's balancer (verify checks that it exists)."""
    balancer = Path(sys.executable).with_name("balancer")
    unit = tmp_path / "balancer.service"
    unit.write_text(UNIT.read_text().replace("/opt/balancer/venv/bin/balancer", str(balancer)))
    return unit


@needs_analyze
def test_security_exposure_is_ok_at_3_or_less(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = installed_copy(tmp_path)
    run = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--threshold=30", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for balancer\.service: ([0-9.]+) (\w+)", run.stdout)
    assert found, run.stdout + run.stderr
    exposure, verdict = float(found.group(1)), found.group(2)
    assert exposure <= 3.0 and verdict == "OK", run.stdout
    assert run.returncode == 0, run.stdout + run.stderr  # --threshold=30: above 3.0 fails
    assert f"{exposure} OK" in UNIT.read_text(), "the unit's comment quotes another score"


@needs_analyze
def test_verify_finds_nothing(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = installed_copy(tmp_path)
    run = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout + run.stderr == ""  # unknown keys are only warnings: none allowed


@needs_analyze
def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = installed_copy(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    run = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert "Unknown key" in run.stdout + run.stderr


def test_lifecycle_settings() -> None:
    s = settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["always"]
    assert s["User"] == ["balancer"] and s["UMask"] == ["0077"]
    assert s["ProtectHome"] == ["yes"] and s["ProtectSystem"] == ["strict"]


def test_exec_start_is_a_valid_command_line() -> None:
    (exec_start,) = settings()["ExecStart"]
    program, *args = shlex.split(exec_start)
    assert program.endswith("/bin/balancer") and args[0] == "run"
    run = subprocess.run(
        [sys.executable, "-m", "balancer", *args, "--help"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
