"""The tables `status` and `plan` draw (cli/inspect_cmd.py), from the API's own bodies: a down host says
why, a VM says what holds it (a migration, cooldown, quarantine), a plan shows each move's copy mode,
bytes, time, flags and the moves it waits for, and every skip with its reason."""

from __future__ import annotations

import io
import re
import time

from balancer.api import views
from balancer.cli.inspect_cmd import print_plan, print_status
from balancer.model import HostState, MoveCost, PastMove, Plan, Skip
from balancer.reasons import Reason
from tests.builders import GIB, NOW, host, snapshot, vm
from tests.store.builders import move, record


def drawn(draw, *args) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """What ``draw`` prints piped, as rows of cells (columns are two or more spaces apart)."""
    out = io.StringIO()
    draw(*args, out=out)
    return [re.split(r"\s{2,}", line.strip()) for line in out.getvalue().splitlines() if line.strip()]


def row(rows: list[list[str]], first: str) -> list[str]:
    return next(r for r in rows if r[0] == first)


def cluster():  # type: ignore[no-untyped-def]
    return snapshot(
        hosts=[
            host("h1", cpus=8.0),
            host("h2", state=HostState.DOWN, error="cannot connect: Connection refused (libvirt code 38)"),
        ],
        vms=[vm("web-1", "h1", cpu_cores=2.0), vm("db-1", "h1"), vm("cache", "h1")],
    )


def test_status_shows_hosts_with_their_load_and_drain_and_why_a_host_is_down() -> None:
    hosts = views.hosts(["h1", "h2", "h3"], cluster(), {"h1": 7})
    rows = drawn(print_status, hosts, None)
    assert rows[0] == ["3 hosts"]
    h1 = row(rows, "h1")
    assert h1[1] == "up" and h1[4] == "3" and h1[-1] == "7"
    assert h1[2] == f"{100 * 4.0 / 8.0:.0f}%"  # 4 cores of VMs on 8
    assert row(rows, "h2")[1] == "down"
    assert row(rows, "h3")[1:4] == ["unknown", "-", "-"]  # configured, not seen by the collection
    assert ["down: h2: cannot connect: Connection refused (libvirt code 38)"] in rows


def test_status_vms_say_what_holds_each_one() -> None:
    snap = cluster()
    now = time.time()
    holds = views.Holds.of(
        recent=[
            PastMove("db-1", "h2", "h1", finished_at=now - 60, succeeded=True),
            PastMove("cache", "h1", "h3", finished_at=now - 60, succeeded=False),
        ],
        in_flight=[record("m-9", vm="web-1", source="h1", target="h3")],
        cooldown_minutes=60,
        quarantine_minutes=120,
    )
    vms = [views.vm(v, holds, now) for v in snap.vms]
    rows = drawn(print_status, views.hosts(["h1"], snap, {}), vms)
    assert row(rows, "web-1")[-1] == "migrating (m-9)"
    cooldown = time.strftime("%H:%M", time.localtime(now - 60 + 3600))
    quarantine = time.strftime("%H:%M", time.localtime(now - 60 + 7200))
    assert row(rows, "db-1")[-1] == f"cooldown until {cooldown}"
    assert row(rows, "cache")[-1].startswith(f"quarantined until {quarantine}")
    assert row(rows, "web-1")[1:4] == ["h1", "running", "2.00"]


def test_a_plan_shows_its_moves_costs_flags_waits_and_skips() -> None:
    cost = MoveCost(disk_bytes=3 * GIB, backing_bytes=GIB, memory_bytes=GIB, seconds=125.0, copy_mode="full")
    plan = Plan(
        created_at=NOW,
        moves=(
            move("room", "h2", "h3", cost=cost),
            move(
                "db-1", "h1", "h2", reason=Reason.DRAIN, flags=(Reason.WOULD_NOT_CONVERGE,), after=("room",)
            ),
        ),
        skips=(
            Skip("vm", "pinned-1", Reason.PINNED, "pinned to h1"),
            Skip("host", "h4", Reason.HOST_DOWN, ""),
        ),
        imbalance_before=0.25,
        imbalance_after=0.125,
        overloaded_before=("h1",),
    )
    rows = drawn(print_plan, plan)
    summary = rows[0][0]
    assert summary.startswith("imbalance 0.250 → 0.125; overloaded hosts h1 → none; 2 move(s),")
    assert summary.endswith(f"{plan.predicted_bytes / GIB:.2f} GiB to copy")
    first = row(rows, "0")
    assert first[1:6] == ["room", "h2", "h3", "balance", "full"]
    assert first[6:8] == ["5.00", "125"]
    second = row(rows, "1")
    assert second[4] == "drain would_not_converge"
    assert second[-1].endswith("(starts once room left h2)")
    assert row(rows, "vm")[1:] == ["pinned-1", "pinned", "pinned to h1"]
    assert row(rows, "host")[1:3] == ["h4", "host_down"]


def test_an_empty_plan_is_one_line() -> None:
    plan = Plan(created_at=NOW, moves=(), skips=(), imbalance_before=0.01, imbalance_after=0.01)
    assert drawn(print_plan, plan) == [
        ["imbalance 0.010 → 0.010; overloaded hosts none → none; 0 move(s), 0.00 GiB to copy"]
    ]
