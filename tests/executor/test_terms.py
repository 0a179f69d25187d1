"""A Runner serves one leadership term: once the term lapses it admits nothing, acts on no host and
writes nothing; the next term adopts what it left (simulated cluster, real SQLite store)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from balancer.errors import LeaseLost
from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import Event, Note, OutcomeStatus
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.fence import FencedHypervisor
from balancer.executor.runner import Runner
from balancer.model import Move, MoveCost, MoveState
from balancer.reasons import Reason
from balancer.sim.hypervisor import SimHosts
from balancer.store import Store
from balancer.store.records import DrainState, Fence
from tests.leader import lead
from tests.waiting import wait_for

FAST = ExecutorArgs(poll_seconds=0.05, settle_seconds=1.0, memory_headroom_mib=0, recovery_wait_seconds=10)


@dataclass
class Switch:
    """A Term whose validity the test turns off, as the lease keeper's deadline would."""

    epoch: int
    on: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.on.set()

    def valid(self) -> bool:
        return self.on.is_set()


def move(vm: str, src: str = "h1", dst: str = "h2") -> Move:
    return Move(vm, src, dst, Reason.DRAIN, MoveCost(0, 0, 0, 0.0))


def runner(sim: SimHosts, eps: dict[str, MigrationEndpoint], store: Store, fence: Fence, term: Switch,
           events: list[Event], limits: LimitArgs | None = None) -> Runner:  # fmt: skip
    return Runner(
        FAST, limits or LimitArgs(), sim.hypervisor, store.journal(fence), eps, events.append, term=term
    )


def test_a_lapsed_term_refuses_every_host_action_and_a_copy_stops_mid_stream(sim: SimHosts) -> None:
    term = Switch(1)
    hv = FencedHypervisor(sim.hypervisor("h2"), term)
    hv.pools()  # reads are never fenced
    chunks_sent: list[int] = []

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(4):
            if i == 2:
                term.on.clear()  # the lease's deadline passes while the copy streams
            chunks_sent.append(i)
            yield b"x" * 1024

    sim.add_volume("h2", "/var/lib/libvirt/images/copy.raw", b"", "raw")
    with pytest.raises(LeaseLost, match="no longer leads epoch 1"):
        hv.write_volume("/var/lib/libvirt/images/copy.raw", chunks(), 4096)
    assert chunks_sent == [0, 1, 2]  # the chunk after the deadline never went out
    for action in (
        lambda: hv.delete_volume("/var/lib/libvirt/images/copy.raw"),
        lambda: hv.abort_job("vm"),
        lambda: hv.set_max_downtime("vm", 500),
        lambda: hv.start_post_copy("vm"),
        lambda: hv.create_volume("images", "x.qcow2", 1, "qcow2", None),
    ):
        with pytest.raises(LeaseLost):
            action()
    assert hv.volume("/var/lib/libvirt/images/copy.raw") is not None  # nothing was deleted


def test_a_lapsed_term_admits_nothing_and_its_queue_is_left_to_the_next_leader(
    sim: SimHosts, sim_endpoints: dict[str, MigrationEndpoint], store: Store
) -> None:
    for i in range(3):
        sim.add_vm(f"v{i}", "h1")
    sim.faults.seconds = 1.5
    fence = lead(store, "one", ttl=30)
    term = Switch(fence.epoch)
    events: list[Event] = []
    r = runner(sim, sim_endpoints, store, fence, term, events, LimitArgs(per_source=1))
    recs = r.submit([move("v0"), move("v1", dst="h3"), move("v2")])
    wait_for("the first migration", lambda: store.get_record(recs[0].id).state == MoveState.MIGRATING, 10)
    term.on.clear()  # the term lapses: the dispatcher detaches the runner on its next pass
    wait_for("the runner to detach", lambda: r.detached, 10)
    assert store.get_record(recs[1].id).state == MoveState.QUEUED  # never started, never written
    assert store.get_record(recs[2].id).state == MoveState.QUEUED
    notes = [e.message for e in events if isinstance(e, Note)]
    assert any("left to the next leader" in n for n in notes)
    with pytest.raises(LeaseLost):
        r.submit_one(move("v1", dst="h3"))
    assert [vm for vm, *_ in sim.log] in ([], ["v0"])  # at most the migration that had started

    store.release_lease("one", fence.epoch)
    new = lead(store, "two")
    r2 = runner(sim, sim_endpoints, store, new, Switch(new.epoch), events)
    owned = r2.adopt(store.unfinished_records())
    ended = {rec.id: store.get_record(rec.id) for rec in recs[1:]}
    assert all((e.state, e.outcome) == (MoveState.ABORTED, Reason.LEADER_CHANGED) for e in ended.values())
    assert [o.id for o in owned] in ([recs[0].id], [])  # the running one, unless it had ended already
    outs = r2.wait([o.id for o in owned], timeout=20)
    assert all(o.record.epoch == new.epoch for o in outs)
    assert all(o.status == OutcomeStatus.SUCCEEDED for o in outs), [o.detail for o in outs]
    assert store.unfinished_records() == ()


def test_a_queued_move_withdrawn_in_the_store_is_dropped_and_reported(
    sim: SimHosts, sim_endpoints: dict[str, MigrationEndpoint], store: Store
) -> None:
    sim.add_vm("v0", "h1")
    sim.add_vm("v1", "h1")
    sim.faults.seconds = 1.0
    fence = lead(store, "one")
    drain, _ = store.create_drain("h1", "ops", store.now())
    events: list[Event] = []
    r = runner(sim, sim_endpoints, store, fence, Switch(fence.epoch), events, LimitArgs(per_source=1))
    first = r.submit_one(move("v0"), drain_id=drain.id)
    second = r.submit_one(move("v1", dst="h3"), drain_id=drain.id)
    wait_for("the first running", lambda: store.get_record(first.id).state == MoveState.MIGRATING, 10)
    store.close_drain(drain.id, DrainState.CANCELLED, "ops", store.now())
    assert r.forget_withdrawn(rec.id for rec in store.unfinished_records()) == [second.id]
    (out,) = r.wait([second.id], timeout=5)
    assert (out.status, out.reason) == (OutcomeStatus.ABORTED, Reason.DRAIN_CANCELLED)
    (done,) = r.wait([first.id], timeout=20)
    assert done.status == OutcomeStatus.SUCCEEDED  # a running move of the drain ends normally
    assert [vm for vm, *_ in sim.log] == ["v0"]
