"""Run one host tool (ip, mount, nsenter, qemu-img, apt-get) and fail with its stderr."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from balancer.lab.errors import LabCommandError


def run(
    cmd: Sequence[str | Path],
    *,
    check: bool = True,
    cwd: Path | None = None,
    timeout: float | None = 120,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` with captured text output; raise LabCommandError if check and it fails.

    stdin is /dev/null unless input_text is given, so a tool that would prompt fails instead of
    hanging a test run.
    """
    argv = [str(part) for part in cmd]
    proc = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise LabCommandError(argv, proc.returncode, proc.stderr)
    return proc
