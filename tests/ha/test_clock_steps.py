"""A step of the leader's wall clock, an hour back and then two forward (libfaketime), changes nothing
but timestamps: its ticks go on at their interval, it keeps the lease in the same term (expiry is judged
by PostgreSQL's clock), the follower does not take over, readiness stays true, and an open drain keeps
being worked on (here: it names its blockers, since libvirt's test driver cannot migrate)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from balancer.store import Store
from tests.ha.fakeclock import FakeClock
from tests.ha.fleet import Fleet
from tests.pg import PgServer
from tests.service.conftest import driver_hosts
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def ticks(inst) -> float:  # type: ignore[no-untyped-def]
    return inst.metric('balancer_ticks_total{result="ok"}') or 0.0


def test_wall_clock_steps_change_nothing_but_timestamps(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.create_schema("clock_steps")
    clock = FakeClock(tmp_path)
    fleet = Fleet(
        tmp_path,
        {
            "hosts": driver_hosts(a={"cpus": 3}),
            "automation": "auto",
            "store": {"url": url},
            "collection": {"interval_seconds": 1, "window": 1},
            "thresholds": {"hold_ticks": 1},
            "service": {"lease_seconds": 5, "shutdown_grace_seconds": 0},
        },
    )
    with Store.open(url) as store:
        leader = fleet.start("stepped", env=clock.env)
        assert fleet.wait_leader(store) is leader
        follower = fleet.start("steady")
        try:
            wait_for("the follower up", lambda: ticks(follower) >= 2, 60)
            epoch = store.current_leader().epoch  # type: ignore[union-attr]
            r = leader.post("/v1/drains", {"host": "a"})
            assert r.status_code == 201, r.text
            for step in (-3600, +7200):
                before = ticks(leader)
                clock.step(step)
                wait_for(f"ticks on after a {step:+d} s step", lambda b=before: ticks(leader) >= b + 5, 30)
                assert leader.post("/v1/drains", {"host": "a"}).status_code == 200  # logs a line now
                stamped = datetime.fromisoformat(
                    leader.events("api_drain_create")[-1]["ts"].replace("Z", "+00:00")
                )
                skew = stamped.timestamp() - time.time()
                assert abs(skew - clock.offset) < 60, (skew, clock.offset)  # the step did reach the process
                lease = store.current_leader()
                assert lease is not None and f"/{leader.pid}/" in lease.holder and lease.epoch == epoch
                ready = leader.get("/readyz")
                assert ready["ready"] and ready["last_tick_age_seconds"] < 3, ready
                assert (leader.metric("balancer_last_tick_age_seconds") or 99) < 3
            drain = leader.get("/v1/drains/a")
            assert drain["state"] == "done" or drain["progress"]["blockers"], drain
            assert not follower.events("leader_acquired")
            assert not leader.events("leader_lost")
        finally:
            fleet.stop()
