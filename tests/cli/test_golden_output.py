"""Golden output of listing commands against a real `balancer run` (libvirt test-driver hosts, SQLite):
piped (the same at any $COLUMNS: every column, nothing cut) and on a real terminal (tmux) 80 and 200
columns wide. Times, percentages and load figures are masked (same length, so alignment still counts).

After an intended change of the output: BALANCER_UPDATE_GOLDEN=1 pytest tests/cli/test_golden_output.py
rewrites tests/cli/golden/, and the diff shows what changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.running import config, service

GOLDEN = Path(__file__).parent / "golden"
BALANCER = str(Path(sys.executable).with_name("balancer"))
COMMANDS = {"status": ["status", "--vms"], "drains": ["drains"], "plan": ["plan"]}
UPDATE = os.environ.get("BALANCER_UPDATE_GOLDEN") == "1"
_VOLATILE = (
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"), lambda m: "YYYY-MM-DD HH:MM"),
    (re.compile(r"\d+\.\d{2,4}"), lambda m: re.sub(r"\d", "N", m.group())),  # cores, GiB, imbalance
    (re.compile(r"\d+%"), lambda m: "N" * (len(m.group()) - 1) + "%"),  # CPU and memory load
)


def normalised(text: str) -> str:
    for pattern, mask in _VOLATILE:
        text = pattern.sub(mask, text)
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n"


def clean_env() -> dict[str, str]:
    drop = ("BALANCER_API", "BALANCER_TOKEN", "COLUMNS", "LINES")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A service that only collects (automation off), with one open drain to list and plan for."""
    path = config(tmp_path_factory.mktemp("golden"), automation="off")
    with service(path):
        opened = subprocess.run(
            [BALANCER, "drain", "b", "--config", str(path)], env=clean_env(), capture_output=True, timeout=60
        )
        assert opened.returncode == 0, opened.stderr
        yield path


def piped(cfg: Path, args: list[str], columns: int) -> str:
    env = {**clean_env(), "COLUMNS": str(columns)}
    r = subprocess.run(
        [BALANCER, *args, "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def on_terminal(cfg: Path, args: list[str], width: int, tmp_path: Path) -> str:
    """What a terminal ``width`` columns wide shows: the command runs in a tmux pane of that size."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (scripts/bootstrap.sh installs it)")
    sock = str(tmp_path / "tmux.sock")  # a server of our own, ended below
    tmux = ["tmux", "-S", sock, "-f", "/dev/null"]
    command = " ".join([BALANCER, *args, "--config", str(cfg)])
    # the pane stays open after the command (read) so that it can be captured; wait-for says it ended
    script = f"env -u COLUMNS -u LINES {command}; {' '.join(tmux)} wait-for -S ended; read _"
    new = [*tmux, "new-session", "-d", "-x", str(width), "-y", "80", "-s", "golden", script]
    subprocess.run(new, env=clean_env(), check=True, timeout=30)
    try:
        subprocess.run([*tmux, "wait-for", "ended"], check=True, timeout=60)
        shown = subprocess.run([*tmux, "capture-pane", "-p", "-t", "golden"], capture_output=True, text=True)
        return shown.stdout
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, timeout=30)


def check(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.write_text(normalised(text))
    assert normalised(text) == path.read_text(), f"{path} differs (BALANCER_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("name", COMMANDS)
def test_piped_output_is_whole_at_any_width(cfg: Path, name: str) -> None:
    narrow, wide = piped(cfg, COMMANDS[name], 80), piped(cfg, COMMANDS[name], 200)
    assert normalised(narrow) == normalised(wide)
    assert "…" not in narrow
    check(f"{name}.piped", narrow)


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("name", COMMANDS)
def test_on_a_terminal_nothing_is_cut(cfg: Path, name: str, width: int, tmp_path: Path) -> None:
    shown = on_terminal(cfg, COMMANDS[name], width, tmp_path)
    assert "…" not in shown
    assert max(len(line.rstrip()) for line in shown.splitlines()) <= width
    check(f"{name}.tty{width}", shown)
