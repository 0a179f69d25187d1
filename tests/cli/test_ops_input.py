"""Bad input to the operator commands is exit 2 naming the option, value or host; no service is exit 3."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from balancer.cli.ops_cmd import parse_duration, register
from tests.api.harness import free_port, write_config

app = typer.Typer()
register(app)


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "config.yaml", f"sqlite:///{tmp_path}/b.db", listen=f"127.0.0.1:{free_port()}"
    )


def run(*args: str, **env: str | None) -> Result:
    return CliRunner().invoke(app, list(args), env={"BALANCER_API": None, "BALANCER_TOKEN": None, **env})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--deadline") == seconds


@pytest.mark.parametrize("text", ["2x", "2", "h", "0m", "-1h", "2h junk", ""])
def test_a_bad_duration_is_exit_2_naming_option_and_value(cfg_file: Path, tmp_path: Path, text: str) -> None:
    r = run("drain", "h1", "--deadline", text, "--config", str(cfg_file))
    assert r.exit_code == 2
    assert r.stderr == (
        f"--deadline: {text!r} is not a duration; use a number and a unit s, m, h or d, e.g. 30m, 2h, 1d\n"
    )
    assert not (tmp_path / "b.db").exists()  # nothing was even opened


@pytest.mark.parametrize("command", ["drain", "undrain"])
def test_an_unknown_host_is_exit_2_listing_the_known_ones(cfg_file: Path, command: str) -> None:
    r = run(command, "h9", "--config", str(cfg_file))
    assert r.exit_code == 2
    assert r.stderr == "HOST: 'h9' is not a configured host; known: h1, h2, h3\n"


def test_a_note_with_control_characters_is_exit_2(cfg_file: Path) -> None:
    r = run("drain", "h1", "--note", "a\x1bb", "--config", str(cfg_file))
    assert r.exit_code == 2
    assert r.stderr.startswith("--note: 'a\\x1bb' must not contain control characters")


def test_a_missing_config_is_exit_2(tmp_path: Path) -> None:
    r = run("drains", "--config", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2
    assert "does not exist" in r.stderr


def test_no_service_and_no_config_is_exit_3(tmp_path: Path) -> None:
    r = run("drains", "--config", str(tmp_path / "nope.yaml"), "--api", f"http://127.0.0.1:{free_port()}")
    assert r.exit_code == 3
    assert "no service answers at http://127.0.0.1:" in r.stderr


def test_an_unreachable_store_with_local_is_exit_3_without_the_password(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        f"postgresql+psycopg://u:secret@127.0.0.1:{free_port()}/b",
        listen=f"127.0.0.1:{free_port()}",
    )
    r = run("drains", "--local", "--config", str(cfg))
    assert r.exit_code == 3, r.output
    assert "error: --local:" in r.stderr and "secret" not in r.stderr
