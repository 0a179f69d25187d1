"""The control plane under faults, with real `balancer run` processes, real PostgreSQL and real block
migrations in the lab. Each test drains a host while a fault hits at a moment drawn from a seeded RNG
($BALANCER_FAULT_SEED), then checks what libvirt and the store really show:

* at no sampled moment more migrations out of (or into) a host than the limits allow (libvirt job info);
* no final journal record ever rewritten, no record's epoch going back, no write of a term after a later
  term took over (PostgreSQL triggers log every write);
* every VM runs exactly once, arrived live (heartbeats go on, no reboot), and the drain completed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from balancer.lab import Lab
from balancer.model import MigrationRecord, MoveState
from balancer.reasons import Reason
from balancer.store import Store
from tests.ha.fleet import Fleet, Instance, JobMonitor, JournalHistory, every_vm_runs_once
from tests.pg import PgServer, start_server
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
SEED = int(os.environ.get("BALANCER_FAULT_SEED", "1212"))
QUIET = {"dirty_mib_s": 0, "disk_mib_s": 0, "overlay_mib": 16, "memory_mib": 96}
INTERVAL, TTL = 2, 3


def lab_base(lab: Lab, url: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = yaml.safe_load(lab.config_yaml(cpus=1.0, memory_mib=2048))
    cfg.update(
        {
            "automation": "recommend",  # only drain and operator moves run: nothing else interferes
            "store": {"url": url},
            "collection": {"interval_seconds": INTERVAL, "window": 1, "host_timeout_seconds": 5},
            "limits": {"per_source": 1, "per_target": 1, "bandwidth_mib_s": 12, "host_bandwidth_mib_s": 24},
            "executor": {"memory_headroom_mib": 32, "backing_verify": "size", "settle_seconds": 20},
            "service": {"lease_seconds": TTL, "shutdown_grace_seconds": 0},
        }
    )
    cfg.update(extra)
    return cfg


@pytest.fixture
def rng() -> random.Random:
    print(f"fault seed {SEED} (set BALANCER_FAULT_SEED to replay another)")
    return random.Random(SEED)


@pytest.fixture
def pg() -> Iterator[PgServer]:
    """A PostgreSQL of this test's own: some tests stop it."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


def schema(pg: PgServer, name: str) -> tuple[str, JournalHistory]:
    url = pg.create_schema(name)
    Store.open(url).close()  # the schema, so the history triggers can attach to its tables
    return url, JournalHistory(url)


def guests(lab_guest: Any, lab: Lab, host: str, n: int, prefix: str) -> dict[str, int]:
    """``n`` quiet guests on ``host``; their heartbeats now."""
    names = [lab_guest(f"{prefix}-{i}", host, **QUIET).name for i in range(n)]
    return {name: lab.wait_heartbeat(host, name) for name in names}


def migrating(store: Store, source: str) -> Any:
    return next(
        (r for r in store.unfinished_records() if r.source == source and r.state == MoveState.MIGRATING), None
    )


def drain_done(store: Store, host: str) -> bool:
    found = store.drains(host=host, limit=1)
    return bool(found) and found[0].state.value == "done"


def check_arrivals(lab: Lab, beats: dict[str, int], not_on: str) -> dict[str, str]:
    where = every_vm_runs_once(lab, list(beats))
    for vm, host in where.items():
        assert host != not_on, f"{vm} is still on {not_on}"
        lab.wait_live_arrival(host, vm, after=beats[vm], timeout=60)
    return where


def check_limits(monitor: JobMonitor, lab: Lab) -> None:
    assert monitor.samples, "the job monitor saw nothing"
    for h in lab.hosts:
        assert monitor.max_outgoing(h.name) <= 1, (
            f"{h.name}: {monitor.max_outgoing(h.name)} migrations out at once"
        )
        assert monitor.max_incoming(h.name) <= 1, (
            f"{h.name}: {monitor.max_incoming(h.name)} migrations in at once"
        )


@contextmanager
def fleet_of(tmp_path: Path, base: dict[str, Any]) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, base)
    try:
        yield fleet
    except BaseException:
        print(fleet.logs())
        raise
    finally:
        fleet.stop()


@dataclass
class LoneDrain:
    """One instance (8 s lease) draining ``host`` of its guests, a migration under way."""

    store: Store
    only: Instance
    history: JournalHistory
    monitor: JobMonitor
    beats: dict[str, int]
    host: str

    def finished_within_limits(self, lab: Lab) -> tuple[MigrationRecord, ...]:
        """The drain completed, never over the limits, no final record rewritten, every guest moved."""
        wait_for("the drain to finish", lambda: drain_done(self.store, self.host), 300)
        check_limits(self.monitor, lab)
        self.history.check()
        records = self.store.records()
        assert sorted(r.vm for r in records if r.state == MoveState.SUCCEEDED) == sorted(self.beats)
        return records


@contextmanager
def lone_drain(
    lab: Lab, lab_guest: Any, pg: PgServer, tmp_path: Path, host: str, name: str
) -> Iterator[LoneDrain]:
    """3 quiet guests on ``host``, one `balancer run` on a PostgreSQL schema of its own draining it; on a
    clean exit, every guest runs once elsewhere and arrived live."""
    beats = guests(lab_guest, lab, host, 3, name)
    url, history = schema(pg, f"ha_{name}")
    base = lab_base(lab, url, service={"lease_seconds": 8, "shutdown_grace_seconds": 0})
    with Store.open(url) as store, fleet_of(tmp_path, base) as fleet, JobMonitor(lab) as monitor:
        only = fleet.start("only")
        assert fleet.wait_leader(store) is only
        assert only.post("/v1/drains", {"host": host}).status_code == 201
        wait_for(f"a migration off {host}", lambda: migrating(store, host), 120)
        yield LoneDrain(store, only, history, monitor, beats, host)
    check_arrivals(lab, beats, not_on=host)


def test_a_paused_leader_then_a_killed_one_are_replaced_and_never_act_beside_their_successor(
    lab: Lab, lab_guest: Any, pg: PgServer, tmp_path: Path, rng: random.Random
) -> None:
    """Drain h1 (4 guests); pause the leader (SIGSTOP) past its lease mid-migration, resume it; later
    kill -9 the leader of the time mid-migration. Each successor adopts the running migration."""
    beats = guests(lab_guest, lab, "h1", 4, "pause")
    url, history = schema(pg, "ha_pause_kill")
    with (
        Store.open(url) as store,
        fleet_of(tmp_path, lab_base(lab, url)) as fleet,
        JobMonitor(lab) as monitor,
    ):
        first = fleet.start("one")
        assert fleet.wait_leader(store) is first
        second = fleet.start("two")
        assert first.post("/v1/drains", {"host": "h1"}).status_code == 201

        wait_for("a migration off h1", lambda: migrating(store, "h1"), 120)
        threading.Event().wait(rng.uniform(0.5, 5.0))
        epoch = store.current_leader().epoch  # type: ignore[union-attr]
        first.pause()
        paused_at = time.monotonic()
        successor = fleet.wait_leader(store, timeout=30, other_than=first)
        took = time.monotonic() - paused_at
        threading.Event().wait(max(0.0, 2 * TTL - took) + rng.uniform(0.0, 2.0))  # paused past its lease
        first.resume()
        assert successor is second and took < TTL + TTL / 3 + INTERVAL + 2, took
        assert store.current_leader().epoch > epoch  # type: ignore[union-attr]

        wait_for(
            "the next migration off h1", lambda: (m := migrating(store, "h1")) and m.epoch > epoch and m, 180
        )
        threading.Event().wait(rng.uniform(0.5, 5.0))
        second.kill()
        killed_at = time.monotonic()
        third = fleet.wait_leader(store, timeout=30, other_than=second)
        assert third is first and time.monotonic() - killed_at < TTL + TTL / 3 + INTERVAL + 2

        wait_for("the drain to finish", lambda: drain_done(store, "h1"), 300)
        check_limits(monitor, lab)
        history.check()
        adoptions = [r for r in history.rows() if r[1] == "migration" and r[6] > r[5]]
        assert len({r[2] for r in adoptions}) >= 2, f"each successor adopts what was in flight: {adoptions}"
        assert first.events("leader_lost") or first.events("term_ended"), "the paused leader noticed"
        records = store.records()
        assert sorted(r.vm for r in records if r.state == MoveState.SUCCEEDED) == sorted(beats)
    check_arrivals(lab, beats, not_on="h1")


def test_store_outages_shorter_than_the_lease_keep_the_term_longer_ones_end_it(
    lab: Lab, lab_guest: Any, pg: PgServer, tmp_path: Path, rng: random.Random
) -> None:
    """One instance drains h2 (3 guests) with an 8 s lease: PostgreSQL stopped 3 s mid-migration keeps
    its term; stopped 12 s ends it, and the same process leads again in a new term, adopting its own
    detached migration instead of reconciling one it still runs."""
    with lone_drain(lab, lab_guest, pg, tmp_path, "h2", "blip") as run:
        store, only = run.store, run.only
        epoch = store.current_leader().epoch  # type: ignore[union-attr]
        threading.Event().wait(rng.uniform(0.2, 3.0))
        pg.outage(3)
        wait_for("the store back", lambda: store.current_leader() is not None, 30)
        assert store.current_leader().epoch == epoch  # type: ignore[union-attr]
        assert not only.events("leader_lost")

        wait_for("another migration off h2", lambda: (m := migrating(store, "h2")) and m, 180)
        threading.Event().wait(rng.uniform(0.2, 3.0))
        pg.outage(12)
        lease = wait_for(
            "a new term", lambda: (cur := store.current_leader()) and cur.epoch > epoch and cur, 60
        )
        assert f"/{only.pid}/" in lease.holder  # the same process, leading again in a new term
        records = run.finished_within_limits(lab)
        assert only.events("leader_lost"), "the 12 s outage ended the term"
        assert all(r.outcome != Reason.SHUTDOWN for r in records), [
            (r.vm, r.state, r.detail) for r in records
        ]


def test_a_pause_past_the_local_deadline_inside_the_stores_lease_starts_a_new_term(
    lab: Lab, lab_guest: Any, pg: PgServer, tmp_path: Path, rng: random.Random
) -> None:
    """One instance drains h3 (3 guests) with an 8 s lease: its local deadline is 6.4 s after a renewal
    is sent, the store's expiry 8 s. Paused (SIGSTOP) right after a renewal for 6.5-7.5 s mid-migration, it
    resumes past its own deadline while a renewal would still be granted: that term must stay over (its
    executor stopped on the deadline), and the same process leads again at once in a new epoch, adopting
    what the lapsed term left. Reviving the old epoch had left a detached executor and a stuck queue."""
    with lone_drain(lab, lab_guest, pg, tmp_path, "h3", "lapse") as run:
        store, only = run.store, run.only
        threading.Event().wait(rng.uniform(0.2, 3.0))
        before = store.current_leader()
        assert before is not None
        renewed = wait_for(
            "a renewal",
            lambda: (cur := store.current_leader()) and cur.expires_at > before.expires_at and cur,
            10,
            every=0.02,
        )
        only.pause()
        threading.Event().wait(rng.uniform(6.5, 7.5))
        still = store.current_leader()
        only.resume()
        assert still is not None and (still.holder, still.epoch) == (renewed.holder, renewed.epoch), (
            "the pause must end inside the store's lease, or this tests only an expiry"
        )
        lease = wait_for(
            "a new term", lambda: (cur := store.current_leader()) and cur.epoch > renewed.epoch and cur, 30
        )
        assert f"/{only.pid}/" in lease.holder  # the same process, at once, in a new epoch
        run.finished_within_limits(lab)
        lost = [str(e.get("why", "")) for e in only.events("leader_lost")]
        assert any("deadline passed" in why for why in lost), lost


def test_an_operators_migration_and_an_undrain_go_through_the_leaders_queue(
    lab: Lab, lab_guest: Any, pg: PgServer, tmp_path: Path, rng: random.Random
) -> None:
    """While the service drains h3 (3 guests, one at a time), an operator migrates an h2 guest to h1
    through the API: it waits for the limits like the drain's moves (one migration into a host at a
    time). Then an undrain withdraws the drain's queued moves: they never start; the running one ends
    normally."""
    beats = guests(lab_guest, lab, "h3", 3, "queue")
    beats.update(guests(lab_guest, lab, "h2", 1, "manual"))
    manual = next(n for n in beats if n.startswith("manual"))
    url, history = schema(pg, "ha_queue")
    with (
        Store.open(url) as store,
        fleet_of(tmp_path, lab_base(lab, url)) as fleet,
        JobMonitor(lab) as monitor,
    ):
        leader = fleet.start("leader")
        assert fleet.wait_leader(store) is leader
        r = leader.post("/v1/drains", {"host": "h3"})
        assert r.status_code == 201, r.text
        drain_id = r.json()["id"]
        wait_for("a migration off h3", lambda: migrating(store, "h3"), 120)
        r = leader.post("/v1/migrations", {"vm": manual, "target": "h1"})
        assert r.status_code == 202, r.text
        manual_id = r.json()["id"]
        wait_for("the operator's move to end", lambda: store.get_record(manual_id).state.final, 180)
        assert store.get_record(manual_id).state == MoveState.SUCCEEDED, store.get_record(manual_id).detail

        def queued_behind_a_running_one() -> list[Any]:
            unfinished = [m for m in store.unfinished_records() if m.drain_id == drain_id]
            queued = [m for m in unfinished if m.state == MoveState.QUEUED]
            return queued if queued and migrating(store, "h3") else []

        queued = wait_for("drain moves queued behind a running one", queued_behind_a_running_one, 180)
        threading.Event().wait(rng.uniform(0.0, 2.0))
        cancel = leader.delete("/v1/drains/h3")
        assert cancel.status_code == 200 and cancel.json()["state"] == "cancelled", cancel.text
        wait_for(
            "nothing of the drain left unfinished",
            lambda: not [m for m in store.unfinished_records() if m.drain_id == drain_id],
            180,
        )
        drain_records = [m for m in store.records() if m.drain_id == drain_id]
        withdrawn = [m for m in drain_records if m.outcome == Reason.DRAIN_CANCELLED]
        assert {m.id for m in queued} <= {m.id for m in withdrawn}
        assert all(m.started_at is None and m.state == MoveState.ABORTED for m in withdrawn)
        assert not history.after_cancel(drain_id, {m.id for m in drain_records})
        check_limits(monitor, lab)
        history.check()
        manual_rec = store.get_record(manual_id)
        lease = store.current_leader()
        assert lease is not None and (manual_rec.reason, manual_rec.epoch) == (Reason.MANUAL, lease.epoch)
    where = every_vm_runs_once(lab, list(beats))
    moved = {m.vm for m in drain_records if m.state == MoveState.SUCCEEDED}
    assert where[manual] == "h1"
    for vm, host in where.items():
        if vm != manual and vm not in moved:
            assert host == "h3", (vm, where)  # withdrawn: it stays where it was
        if host != "h3" or vm in moved:
            lab.wait_live_arrival(host, vm, after=beats[vm], timeout=60)


def test_a_drain_in_recommend_mode_never_waits_on_a_stale_proposal(
    lab: Lab, lab_guest: Any, pg: PgServer, tmp_path: Path
) -> None:
    """Drain h2 (its guest moves), undrain, move the guest back, drain h2 again: the drain completes
    (before, the second drain's move matched a stale proposal and was skipped every tick, forever)."""
    beats = guests(lab_guest, lab, "h2", 1, "again")
    (vm,) = beats
    url, history = schema(pg, "ha_again")
    with Store.open(url) as store, fleet_of(tmp_path, lab_base(lab, url)) as fleet:
        leader = fleet.start("leader")
        assert fleet.wait_leader(store) is leader
        assert leader.post("/v1/drains", {"host": "h2"}).status_code == 201
        wait_for("the first drain", lambda: drain_done(store, "h2"), 180)
        assert leader.delete("/v1/drains/h2").json()["state"] == "released"
        wait_for("h2 back in service", lambda: leader.get("/v1/hosts/h2")["state"] == "up", 10)
        (first,) = [r for r in store.records(vm=vm) if r.state == MoveState.SUCCEEDED]
        r = leader.post("/v1/migrations", {"vm": vm, "target": "h2"})
        assert r.status_code == 202, r.text
        wait_for("the move back", lambda: store.get_record(r.json()["id"]).state == MoveState.SUCCEEDED, 180)
        assert leader.post("/v1/drains", {"host": "h2"}).status_code == 201
        wait_for("the second drain", lambda: drain_done(store, "h2"), 180)
        history.check()
    where = every_vm_runs_once(lab, [vm])
    assert where[vm] != "h2" and first.target != "h2"
