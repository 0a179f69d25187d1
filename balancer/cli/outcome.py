"""How an operator's migration ended, told in one line, and its exit code (migrate and migrate --local)."""

from __future__ import annotations

from collections.abc import Callable

from balancer.api.schemas import MigrationOut
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE
from balancer.model import MoveState
from balancer.reasons import Reason

MIB = 1 << 20
UNREACHABLE = {Reason.SOURCE_DOWN, Reason.TARGET_DOWN}
BAD_INPUT = {Reason.TARGET_UNKNOWN, Reason.VM_NOT_FOUND, Reason.SAME_HOST}


def report(rec: MigrationOut, took: float, out: Callable[[str], None] = print) -> int:
    """Print how a migration ended; its exit code."""
    if rec.state == MoveState.SUCCEEDED:
        out(
            f"{rec.vm}: migrated {rec.source} → {rec.target} in {took:.1f} s ({rec.copy_mode} copy; "
            f"disk {rec.disk_bytes / MIB:.0f} MiB, memory {rec.memory_bytes / MIB:.0f} MiB, backing "
            f"{rec.backing_bytes / MIB:.0f} MiB; downtime {rec.downtime_ms or 0:.0f} ms) [record {rec.id}]"
        )
        return 0
    err = f"; libvirt: {rec.error.message} (code {rec.error.code})" if rec.error else ""
    outcome = rec.outcome.value if rec.outcome else "-"
    out(f"{rec.vm}: {rec.state.value} ({outcome}): {rec.detail}{err} [record {rec.id}]")
    if not rec.final:
        return EXIT_FAILED
    if rec.outcome in UNREACHABLE:
        return EXIT_UNREACHABLE
    if rec.outcome in BAD_INPUT:
        return EXIT_INPUT
    return EXIT_FAILED
