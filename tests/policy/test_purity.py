"""The planner is pure: no clock, no unseeded randomness, no I/O layers imported (scanned in the source)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

POLICY = Path(__file__).resolve().parents[2] / "balancer" / "policy"
FORBIDDEN_IMPORTS = (
    "libvirt",
    "apscheduler",
    "balancer.store",
    "balancer.executor",
    "balancer.config",
    "time",
    "random",
    "datetime",
    "os",
    "socket",
    "subprocess",
    "requests",
    "httpx",
)
FORBIDDEN_CALLS = re.compile(r"\btime\.|\brandom\.|datetime\.now|\bopen\(|np\.random\.(?!default_rng\(\s*\w)")


def sources() -> list[Path]:
    files = sorted(POLICY.glob("*.py"))
    assert files, POLICY
    return files


def test_no_forbidden_imports() -> None:
    for path in sources():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                bad = [f for f in FORBIDDEN_IMPORTS if name == f or name.startswith(f + ".")]
                assert not bad, f"{path.name}: imports {name}"


def test_no_clock_or_randomness_calls() -> None:
    for path in sources():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert not FORBIDDEN_CALLS.search(code), f"{path.name}:{n}: {line.strip()}"
