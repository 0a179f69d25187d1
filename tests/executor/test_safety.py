"""The executor never powers off, destroys or undefines a domain (only libvirt's UNDEFINE_SOURCE does)."""

from __future__ import annotations

import re
from pathlib import Path

import balancer

FORBIDDEN = re.compile(
    r"\.destroy\(|\.undefine|undefineFlags|\.shutdown\(|\.shutdownFlags\(|\.reset\(|\.reboot\("
)
ROOT = Path(balancer.__file__).parent


def offending_lines() -> list[str]:
    hits = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "lab":  # the lab destroys its own test guests by design
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if FORBIDDEN.search(code) and not _runner_shutdown(rel, code):
                hits.append(f"{rel}:{n}: {line.strip()}")
    return hits


def _runner_shutdown(rel: Path, code: str) -> bool:
    """Runner.shutdown(...) stops our own thread pool, not a domain; allow calls on runners only."""
    ours = r"\b(runner|self|r|pool|executor|scheduler|server|service)\.shutdown\("
    return bool(re.search(ours, code)) or bool(re.search(r"def shutdown\(", code))


def test_no_domain_is_destroyed_undefined_or_shut_down_by_product_code() -> None:
    assert offending_lines() == []


def test_the_check_would_catch_it(tmp_path: Path) -> None:
    assert FORBIDDEN.search("dom.destroy()")
    assert FORBIDDEN.search("dom.undefineFlags(0)")
    assert FORBIDDEN.search("dom.shutdown()")
    assert not _runner_shutdown(Path("executor/x.py"), "dom.shutdown()")
