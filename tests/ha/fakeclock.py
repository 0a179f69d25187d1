"""A process whose wall clock a test steps, with libfaketime (Debian's ``libfaketime``).

Only the wall clock is faked (``FAKETIME_DONT_FAKE_MONOTONIC=1``), as in a real clock step: NTP or an
operator moves CLOCK_REALTIME, never CLOCK_MONOTONIC. libfaketime 0.9.10 (Debian 12) breaks absolute
monotonic sleeps in that mode (wolfcw/libfaketime#426: Python >= 3.11's ``time.sleep`` fails with
EINVAL), so a three-line shim, compiled here and preloaded first, sends ``clock_nanosleep`` straight
to the kernel. The offset is read from a file on every call, so ``step()`` moves the clock of a running
process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
SHIM = """
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req, struct timespec *rem) {
    long r = syscall(SYS_clock_nanosleep, clock_id, flags, req, rem);
    return r == 0 ? 0 : errno;
}
"""


class FakeClock:
    """``env`` runs a process under a wall clock offset by ``step(seconds)`` (cumulative)."""

    def __init__(self, workdir: Path) -> None:
        assert LIBFAKETIME.exists(), f"{LIBFAKETIME} is missing: apt-get install faketime"
        source = workdir / "nanosleep_fix.c"
        source.write_text(SHIM)
        self.shim = workdir / "nanosleep_fix.so"
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(self.shim), str(source)], check=True)
        self.file = workdir / "faketime"
        self.offset = 0.0
        self.file.write_text("+0\n")

    @property
    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": f"{self.shim} {LIBFAKETIME}",
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def step(self, seconds: float) -> None:
        self.offset += seconds
        self.file.write_text(f"{self.offset:+.0f}\n")
