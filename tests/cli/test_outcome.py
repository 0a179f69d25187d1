"""How `balancer migrate` reports an operator's migration and which exit code it ends with (cli/outcome.py):
0 only for a verified success, 3 when a host could not be reached, 2 for what the operator asked wrong,
1 for everything else that did not succeed (or is not over)."""

from __future__ import annotations

import pytest

from balancer.api import views
from balancer.cli.outcome import report
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_OK, EXIT_UNREACHABLE
from balancer.model import MoveState
from balancer.reasons import Reason
from tests.store.builders import record

MIB = 2**20


def told(**fields: object) -> tuple[int, list[str]]:
    """The exit code and the lines `migrate` prints for a record (as the API returns it) after 12.34 s."""
    lines: list[str] = []
    rec = views.migration(record("m7", vm="web1", source="a", target="b", **fields))
    return report(rec, 12.34, out=lines.append), lines


def test_a_verified_success_is_exit_0_with_what_was_copied() -> None:
    code, lines = told(
        state=MoveState.SUCCEEDED,
        outcome=Reason.SUCCEEDED,
        copy_mode="incremental",
        disk_bytes=300 * MIB,
        memory_bytes=128 * MIB,
        backing_bytes=0,
        downtime_ms=42.0,
    )
    assert code == EXIT_OK
    assert lines == [
        "web1: migrated a → b in 12.3 s (incremental copy; disk 300 MiB, memory 128 MiB, backing 0 MiB; "
        "downtime 42 ms) [record m7]"
    ]


def test_a_failure_names_the_outcome_the_detail_and_libvirts_error() -> None:
    code, lines = told(
        state=MoveState.FAILED,
        outcome=Reason.MIGRATION_FAILED,
        detail="the migrate call failed",
        error_code=9,
        error_domain=10,
        error_message="operation failed: job unexpectedly failed",
    )
    assert code == EXIT_FAILED
    assert lines == [
        "web1: failed (migration_failed): the migrate call failed; libvirt: operation failed: job "
        "unexpectedly failed (code 9) [record m7]"
    ]


@pytest.mark.parametrize(
    ("outcome", "exit_code"),
    [
        (Reason.SOURCE_DOWN, EXIT_UNREACHABLE),
        (Reason.TARGET_DOWN, EXIT_UNREACHABLE),
        (Reason.TARGET_UNKNOWN, EXIT_INPUT),
        (Reason.VM_NOT_FOUND, EXIT_INPUT),
        (Reason.SAME_HOST, EXIT_INPUT),
        (Reason.TARGET_NO_MEMORY, EXIT_FAILED),
        (Reason.ABORTED_BY_OPERATOR, EXIT_FAILED),
    ],
)
def test_the_exit_code_follows_why_it_ended(outcome: Reason, exit_code: int) -> None:
    state = MoveState.ABORTED if outcome == Reason.ABORTED_BY_OPERATOR else MoveState.FAILED
    code, lines = told(state=state, outcome=outcome, detail="why")
    assert code == exit_code
    assert lines[0].startswith(f"web1: {state.value} ({outcome.value}): why")


def test_a_migration_still_running_when_the_watch_ended_is_not_a_success() -> None:
    code, lines = told(state=MoveState.MIGRATING, outcome=None, detail="")
    assert code == EXIT_FAILED
    assert lines == ["web1: migrating (-):  [record m7]"]
