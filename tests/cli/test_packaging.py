"""What an operator installs: `balancer --version`, shell completion, the LICENSE pyproject declares,
and constraints.txt pinning every package (the versions this checkout's tests ran with)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from balancer import __version__

ROOT = Path(__file__).resolve().parents[2]


def balancer(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `balancer` script (completion is keyed on the program's name)."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("balancer")), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_version() -> None:
    r = balancer("--version")
    assert (r.returncode, r.stdout) == (0, f"balancer {__version__}\n")
    assert importlib.metadata.version("balancer") == __version__


def test_shell_completion_completes_commands_and_prints_scripts() -> None:
    r = balancer(_BALANCER_COMPLETE="complete_bash", COMP_WORDS="balancer dr", COMP_CWORD="1")
    assert r.stdout.split() == ["drain", "drains"]
    r = balancer(_BALANCER_COMPLETE="complete_bash", COMP_WORDS="balancer config ch", COMP_CWORD="2")
    assert r.stdout.split() == ["check"]
    r = balancer(_BALANCER_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="balancer config ")
    assert '"check":' in r.stdout and '"example":' in r.stdout
    # the script `--install-completion` installs, for a shell named (typer's switch for it): detecting the
    # shell walks the process tree, which holds none when the suite runs detached from a terminal
    r = balancer("--show-completion", "bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert r.returncode == 0 and "complete -o default -F _balancer_completion balancer" in r.stdout


def test_the_license_is_the_one_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert re.match(r"\s*Apache License\s+Version 2\.0, January 2004", text)
    assert "END OF TERMS AND CONDITIONS" in text


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not name==version"
            out[canonicalize_name(name)] = version.strip()
    return out


def test_constraints_pin_every_requirement_to_what_is_installed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    for spec in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{req.name}=={pinned[name]} vs {req}"
    for name, version in pinned.items():  # the lock is what the tests run with
        assert importlib.metadata.version(name) == version, name
    assert "-c constraints.txt" in (ROOT / "scripts" / "bootstrap.sh").read_text()


def test_the_containerfile_copies_files_that_exist() -> None:
    """The image itself is built and smoke-tested by scripts/container.sh (buildah, minutes)."""
    text = (ROOT / "Containerfile").read_text()
    sources = [
        part
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for part in line.split()[1:-1]
    ]
    assert sources and all((ROOT / s).exists() for s in sources), sources
    assert 'ENTRYPOINT ["/opt/balancer/venv/bin/balancer"]' in text
    assert (ROOT / "scripts" / "container.sh").stat().st_mode & 0o111
