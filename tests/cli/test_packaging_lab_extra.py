"""The lab and the demo behind the `lab` extra: the core wheel has none of the lab's code and declares the
extra; balancer-lab (lab/pyproject.toml) carries it at the same version; an install without it runs every
other command and says, for `balancer lab` and `balancer demo`, which extra to install (exit 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from balancer import __version__

ROOT = Path(__file__).resolve().parents[2]
MISSING = "the local lab is not installed (a production install leaves it out); install the extra: "
# A core install without the lab, in this process's checkout: any import of balancer.lab fails as
# it does where the package is absent.
BLOCK_LAB = """
import sys
class NoLab:
    def find_spec(self, name, path=None, target=None):
        if name == "balancer.lab" or name.startswith("balancer.lab."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoLab())
from balancer.cli import main
sys.argv[0] = "balancer"
main(sys.argv[1:])
"""


def without_lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-c", BLOCK_LAB, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_the_lab_the_cli_runs_and_lab_and_demo_name_the_extra() -> None:
    r = without_lab("--help")
    assert r.returncode == 0 and "drains" in r.stdout and "lab" in r.stdout, r.stderr
    assert without_lab("config", "example").returncode == 0
    for argv in (["lab", "up", "--hosts", "3"], ["lab"], ["demo", "--exit"]):
        r = without_lab(*argv)
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stderr == f"balancer {argv[0]}: {MISSING}pip install 'balancer[lab]'\n"
        assert "Traceback" not in r.stderr and r.stdout == ""


def test_the_lab_distribution_has_balancers_version() -> None:
    lab = tomllib.loads((ROOT / "lab" / "pyproject.toml").read_text())["project"]
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert lab["version"] == __version__
    assert lab["dependencies"] == [f"balancer=={__version__}"]
    assert core["optional-dependencies"]["lab"] == [f"balancer-lab=={__version__}"]
    assert (ROOT / "lab" / "src" / "balancer" / "lab").resolve() == ROOT / "balancer" / "lab"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built as `pip wheel` builds them for an index."""
    src = tmp_path_factory.mktemp("src")  # a copy: setuptools reuses a build/ left in the checkout
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("balancer", "lab"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    out = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
    subprocess.run([*pip, str(src), str(src / "lab")], check=True, capture_output=True, timeout=600)
    return {w.name.split("-")[0]: w for w in out.glob("*.whl")}


@pytest.mark.slow
def test_the_core_wheel_declares_the_extra_and_holds_no_lab_code(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["balancer"]) as z:
        names = z.namelist()
        meta = z.read(f"balancer-{__version__}.dist-info/METADATA").decode()
    assert "balancer/cli/__init__.py" in names and "balancer/py.typed" in names
    assert not [n for n in names if n.startswith("balancer/lab")]
    assert "Provides-Extra: lab" in meta.splitlines()
    assert f'Requires-Dist: balancer-lab=={__version__}; extra == "lab"' in meta.splitlines()
    with zipfile.ZipFile(wheels["balancer_lab"]) as z:
        lab_names = z.namelist()
    assert {"balancer/lab/cli.py", "balancer/lab/guest/init.sh"} <= set(lab_names)
    assert not [n for n in lab_names if n.startswith("balancer/") and not n.startswith("balancer/lab/")]


@pytest.mark.slow
def test_installed_wheels_without_and_with_the_lab(wheels: dict[str, Path], tmp_path: Path) -> None:
    """A fresh venv with the core wheel (its dependencies from this one's site-packages): `balancer lab`
    names the extra; with balancer-lab installed too, the same command is the lab's."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )  # a path; its .pth files stay unread
    python = venv / "bin" / "python"

    def pip_install(wheel: Path) -> None:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
        ]
        subprocess.run([*cmd, str(wheel)], check=True, capture_output=True, timeout=300)

    def balancer(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(venv / "bin" / "balancer"), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)

    pip_install(wheels["balancer"])
    assert balancer("--version").stdout == f"balancer {__version__}\n"
    r = balancer("lab", "down")
    assert (r.returncode, r.stderr) == (2, f"balancer lab: {MISSING}pip install 'balancer[lab]'\n")
    pip_install(wheels["balancer_lab"])
    r = balancer("lab", "--help")
    assert r.returncode == 0 and "up" in r.stdout and "not installed" not in r.stdout, r.stderr
