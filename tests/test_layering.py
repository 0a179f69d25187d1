"""The layering contract (.importlinter) cannot go hollow: on a copy of the tree, each kind of wrong import
is caught by ``lint-imports``; the CLI reaches the lab only lazily; importing balancer has no side effects."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``tree`` (its own copy of balancer/ first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / ".importlinter"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of balancer/ and .importlinter that passes lint-imports as the checkout does."""
    tree = tmp_path_factory.mktemp("layering")
    shutil.copytree(ROOT / "balancer", tree / "balancer", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    return tree


# (file to add the import to, the import, the contract that must break, words the report must hold)
VIOLATIONS = [
    ("store/records.py", "import balancer.service.core", "Layers", "balancer.store.records"),
    ("model.py", "from balancer.store import Store", "Layers", "balancer.model"),
    (  # a guard for type checkers hides nothing: the contract counts the import all the same
        "api/context.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from balancer.service.core import Service",
        "Layers",
        "balancer.api.context",
    ),
    ("api/views.py", "import balancer.daemon", "Layers", "balancer.api.views"),
    ("executor/admission.py", "import balancer.metrics.window", "Layers", "balancer.executor.admission"),
    ("policy/cost.py", "import libvirt", "The policy is pure", "balancer.policy.cost -> libvirt"),
    ("policy/cost.py", "import sqlalchemy", "The policy is pure", "balancer.policy.cost -> sqlalchemy"),
    (
        "service/core.py",
        "import balancer.sim.run",
        "Nothing in the product imports the lab",
        "balancer.service.core",
    ),
    (
        "cli/ops_cmd.py",
        "import balancer.lab",
        "Nothing in the product imports the lab",
        "balancer.cli.ops_cmd",
    ),
    (
        "api/app.py",
        "from balancer.sim import trace",
        "Nothing in the product imports the lab",
        "balancer.api.app",
    ),
]


@pytest.mark.parametrize(("path", "statement", "contract", "named"), VIOLATIONS)
def test_a_wrong_import_is_caught(pristine: Path, tmp_path: Path, path: str, statement: str,
                                  contract: str, named: str) -> None:  # fmt: skip
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    target = tree / "balancer" / path
    target.write_text(target.read_text() + f"\n{statement}  # the deliberate violation\n")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken) or contract in result.stdout.split("Contracts:")[0], (
        result.stdout
    )
    assert named in result.stdout


def test_a_package_missing_from_the_layers_is_caught(pristine: Path, tmp_path: Path) -> None:
    """A new package nobody placed in a layer breaks the contract (it is exhaustive), whatever it imports."""
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    (tree / "balancer" / "newthing").mkdir()
    (tree / "balancer" / "newthing" / "__init__.py").write_text('"""Not in any layer."""\n')
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    assert "balancer.newthing" in result.stdout


def test_a_package_without_init_is_still_seen(pristine: Path, tmp_path: Path) -> None:
    """A package directory that lost its __init__.py is not silently skipped: its layer must exist."""
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    (tree / "balancer" / "service" / "__init__.py").unlink()
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout


def test_every_package_directory_has_an_init() -> None:
    """import-linter indexes only packages; a directory of modules without __init__.py would be invisible."""
    missing = [
        str(d.relative_to(ROOT))
        for d in (ROOT / "balancer").rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert missing == []


def test_no_layer_is_optional() -> None:
    """An optional layer ``(name)`` lets the contract pass while a package is invisible to it."""
    text = (ROOT / ".importlinter").read_text()
    layers = text.split("layers =", 1)[1].split("\n\n", 1)[0]
    assert "(" not in layers, layers
    assert "exhaustive = true" in text


def _lazy_violations(path: Path, banned: tuple[str, ...]) -> list[str]:
    """Imports of ``banned`` packages that are not inside a function body."""
    tree = ast.parse(path.read_text(), str(path))
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside |= {id(n) for n in ast.walk(node) if n is not node}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        hits = [n for n in names if n.startswith(banned)]
        if hits and id(node) not in inside:
            out.append(f"{path.name}:{node.lineno} {hits}")
    return out


def test_the_cli_imports_the_lab_and_the_simulator_only_inside_functions() -> None:
    """What .importlinter's ignore_imports lets through for the CLI is lazy: inside the command's function."""
    found = []
    for path in sorted((ROOT / "balancer" / "cli").glob("*.py")):
        found += _lazy_violations(path, ("balancer.lab", "balancer.sim"))
    assert found == []


IMPORT_EVERYTHING = """
import logging, sys, threading
import libvirt
seen = []
libvirt.registerErrorHandler = lambda *a: seen.append("registerErrorHandler")
libvirt.virEventRegisterDefaultImpl = lambda *a: seen.append("virEventRegisterDefaultImpl")
before = set(threading.enumerate())
import balancer, balancer.cli, balancer.daemon, balancer.service, balancer.api.app, balancer.executor
import balancer.executor.libvirt_hypervisor, balancer.metrics.libvirt_source, balancer.store, balancer.policy
import balancer.config, balancer.model
tools = sorted(m for m in sys.modules if m.startswith(("balancer.lab", "balancer.sim")))
print({"tools": tools, "libvirt": seen, "threads": len(set(threading.enumerate()) - before),
       "log_handlers": len(logging.getLogger().handlers)})
"""


def import_everything() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return ast.literal_eval(out.strip())  # type: ignore[no-any-return]


def test_importing_the_product_loads_no_tool_starts_no_thread_and_configures_no_logging() -> None:
    """Importing every product package (and the CLI) loads neither the lab nor the simulator, starts no
    thread and adds no log handler: what a process needs is set up where it starts."""
    seen = import_everything()
    assert (seen["tools"], seen["threads"], seen["log_handlers"]) == ([], 0, 0)


def test_importing_the_product_registers_nothing_with_libvirt() -> None:
    """libvirt's error handler and event loop are process-wide: service.libvirt_process sets them up where
    a process starts (balancer run, the CLI, the tests' conftest), never an import."""
    assert import_everything()["libvirt"] == []


def test_python_dash_m_balancer_runs_the_cli_and_importing_it_does_not() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "balancer", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (ran.returncode, ran.stdout.split()[0]) == (0, "balancer")
    imported = subprocess.run(
        [sys.executable, "-c", "import balancer.__main__"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (imported.returncode, imported.stdout, imported.stderr) == (0, "", "")


def test_tests_import_from_the_root_without_editing_sys_path() -> None:
    """pyproject's ``pythonpath = ["."]`` puts the root on the path for every test; a conftest that edits
    sys.path as well hides which tests would break without it."""
    edits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "sys.path." in line and 'sys.path." in line' not in line
    ]
    assert edits == []
