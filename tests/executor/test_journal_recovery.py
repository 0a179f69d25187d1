"""Journal state machine, and recovery reconciling unfinished records with the hosts."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from balancer.executor.args import ExecutorArgs
from balancer.executor.journal import ALLOWED, Journal, TransitionError, check_transition, new_record
from balancer.executor.recovery import recover
from balancer.model import MigrationRecord, Move, MoveCost, MoveState, TargetVolume
from balancer.reasons import Reason
from balancer.sim.hypervisor import SimHosts
from balancer.store import Store
from tests.leader import journal_of

S = MoveState
ARGS = ExecutorArgs(poll_seconds=0.05, settle_seconds=0.3, recovery_wait_seconds=2.0)


def rec_in(
    store: Store,
    state: MoveState,
    vm: str = "a",
    src: str = "h1",
    dst: str = "h2",
    uuid: str = "",
    created: tuple[str, ...] = (),
) -> MigrationRecord:
    j = Journal(journal_of(store))
    r = j.create(new_record(Move(vm, src, dst, Reason.DRAIN, MoveCost(0, 0, 0, 0.0)), 1.0, 50))
    path = {
        S.QUEUED: [],
        S.PRECHECKING: [S.PRECHECKING],
        S.COPYING_BACKING: [S.PRECHECKING, S.COPYING_BACKING],
        S.MIGRATING: [S.PRECHECKING, S.COPYING_BACKING, S.MIGRATING],
        S.VERIFYING: [S.PRECHECKING, S.COPYING_BACKING, S.MIGRATING, S.VERIFYING],
    }[state]
    for st in path:
        r = j.move_to(r, st)
    for p in created:  # as the executor does: in the ledger before the volume is created
        journal_of(store).save_target_volume(TargetVolume(dst, p, "disk", "provisional", r.id, 1.0))
    target_domain = uuid if state in (S.MIGRATING, S.VERIFYING) else ""
    return j.update(r, vm_uuid=uuid, created_volumes=created, target_domain=target_domain)


def test_happy_path_and_every_failure_edge_allowed() -> None:
    chain = [S.QUEUED, S.PRECHECKING, S.COPYING_BACKING, S.MIGRATING, S.VERIFYING, S.SUCCEEDED]
    for a, b in itertools.pairwise(chain):
        check_transition(a, b)
    for state in ALLOWED:
        check_transition(state, S.NEEDS_ATTENTION)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.QUEUED, S.MIGRATING),
        (S.QUEUED, S.SUCCEEDED),
        (S.PRECHECKING, S.VERIFYING),
        (S.SUCCEEDED, S.FAILED),
        (S.FAILED, S.QUEUED),
        (S.MIGRATING, S.PRECHECKING),
        (S.COPYING_BACKING, S.SUCCEEDED),
    ],
)
def test_forbidden_transitions(old: MoveState, new: MoveState) -> None:
    with pytest.raises(TransitionError):
        check_transition(old, new)


def test_every_transition_is_saved_with_times(store: Store) -> None:
    r = rec_in(store, S.MIGRATING)
    assert store.get_record(r.id).state == S.MIGRATING
    assert r.started_at is not None and r.finished_at is None
    done = Journal(journal_of(store)).finish(r, S.FAILED, Reason.MIGRATION_FAILED, None, "x")
    saved = store.get_record(r.id)
    assert saved.state == S.FAILED and saved.outcome == Reason.MIGRATION_FAILED
    assert saved.finished_at == done.finished_at
    assert r.id not in {x.id for x in store.unfinished_records()}


def test_recovery_target_only_is_succeeded_and_source_cleaned(sim: SimHosts, store: Store) -> None:
    dom = sim.add_vm("a", "h1")
    sim.hosts["h2"].domains[dom.uuid] = sim.hosts["h1"].domains.pop(dom.uuid)
    sim.add_volume("h2", "/var/lib/libvirt/images/a.qcow2", b"O", "qcow2")
    r = rec_in(store, S.MIGRATING, uuid=dom.uuid)
    (out,) = recover(journal_of(store), sim.hypervisor, ARGS)
    assert (out.id, out.state, out.outcome) == (r.id, S.SUCCEEDED, Reason.RECOVERED)
    assert "/var/lib/libvirt/images/a.qcow2" not in sim.hosts["h1"].volumes
    assert "/var/lib/libvirt/base/base.raw" in sim.hosts["h1"].volumes


def test_recovery_source_only_is_failed_and_target_leftovers_removed(sim: SimHosts, store: Store) -> None:
    dom = sim.add_vm("a", "h1")
    sim.add_volume("h2", "/var/lib/libvirt/images/a.qcow2", b"\0", "qcow2")
    r = rec_in(store, S.MIGRATING, uuid=dom.uuid, created=("/var/lib/libvirt/images/a.qcow2",))
    (out,) = recover(journal_of(store), sim.hypervisor, ARGS)
    assert (out.id, out.state, out.outcome) == (r.id, S.FAILED, Reason.RECOVERED)
    assert "/var/lib/libvirt/images/a.qcow2" not in sim.hosts["h2"].volumes
    assert sim.where("a") == [("h1", "running")]


def test_recovery_both_or_neither_or_unreachable_needs_attention(sim: SimHosts, store: Store) -> None:
    both = sim.add_vm("both", "h1")
    sim.hosts["h2"].domains[both.uuid] = both
    r1 = rec_in(store, S.VERIFYING, vm="both", uuid=both.uuid)
    r2 = rec_in(store, S.MIGRATING, vm="gone", uuid="00000000-0000-0000-0000-00000000dead")
    far = sim.add_vm("far", "h1")
    sim.hosts["h3"].up = False
    r3 = rec_in(store, S.MIGRATING, vm="far", dst="h3", uuid=far.uuid, created=("/x",))
    outs = {o.id: o for o in recover(journal_of(store), sim.hypervisor, ARGS)}
    for r in (r1, r2, r3):
        assert outs[r.id].state == S.NEEDS_ATTENTION, outs[r.id].detail
    assert "unreachable" in outs[r3.id].detail
    assert sim.where("both") == [("h1", "running"), ("h2", "running")]  # nothing destroyed


def test_recovery_of_queued_and_prechecking(sim: SimHosts, store: Store) -> None:
    dom = sim.add_vm("a", "h1")
    q = rec_in(store, S.QUEUED)
    p = rec_in(store, S.PRECHECKING, uuid=dom.uuid)
    outs = {o.id: o for o in recover(journal_of(store), sim.hypervisor, ARGS)}
    assert (outs[q.id].state, outs[q.id].outcome) == (S.ABORTED, Reason.SHUTDOWN)
    # left before libvirt was asked to migrate: nothing was tried, so no quarantine (outcome shutdown)
    assert (outs[p.id].state, outs[p.id].outcome) == (S.ABORTED, Reason.SHUTDOWN)
    assert "before the migration started" in outs[p.id].detail
    assert store.unfinished_records() == ()
    assert store.recent_moves(0.0) == ()


def test_recovery_waits_for_a_migration_still_running(sim: SimHosts, store: Store) -> None:
    import threading

    from balancer.executor.facts import MigrationRequest

    dom = sim.add_vm("a", "h1")
    sim.faults.seconds = 0.8
    t = threading.Thread(
        target=sim.hypervisor("h1").migrate,
        args=(dom.uuid, MigrationRequest("sim://h2/system", ("vda",), "incremental", 50)),
    )
    t.start()
    r = rec_in(store, S.MIGRATING, uuid=dom.uuid)
    (out,) = recover(journal_of(store), sim.hypervisor, ARGS)
    t.join()
    assert (out.id, out.state) == (r.id, S.SUCCEEDED)


def test_recovery_keeps_the_bytes_the_journal_had(sim: SimHosts, store: Store) -> None:
    dom = sim.add_vm("a", "h1")
    r = rec_in(store, S.MIGRATING, uuid=dom.uuid)
    Journal(journal_of(store)).update(r, disk_bytes=70 << 20, memory_bytes=117 << 20, backing_bytes=128 << 20)
    (out,) = recover(
        journal_of(store), sim.hypervisor, ARGS
    )  # the migration failed: nothing more from libvirt
    assert (out.state, out.disk_bytes, out.memory_bytes, out.backing_bytes) == (
        S.FAILED,
        70 << 20,
        117 << 20,
        128 << 20,
    )


def test_recovery_of_a_source_stopped_by_its_owner_is_failed_and_the_target_cleaned(
    sim: SimHosts, store: Store
) -> None:
    dom = sim.add_vm("a", "h1")
    sim.hosts["h1"].domains[dom.uuid] = replace(dom, state="shutoff", state_reason="destroyed")
    sim.add_volume("h2", "/var/lib/libvirt/images/a.qcow2", b"\0", "qcow2")
    r = rec_in(store, S.MIGRATING, uuid=dom.uuid, created=("/var/lib/libvirt/images/a.qcow2",))
    (out,) = recover(journal_of(store), sim.hypervisor, ARGS)
    assert (out.id, out.state, out.outcome) == (r.id, S.FAILED, Reason.SOURCE_STOPPED)
    assert "shutoff (destroyed)" in out.detail
    assert "/var/lib/libvirt/images/a.qcow2" not in sim.hosts["h2"].volumes
    assert out.removed_volumes == ("/var/lib/libvirt/images/a.qcow2",)


def test_needs_attention_is_looked_at_again_at_each_start(sim: SimHosts, store: Store) -> None:
    dom = sim.add_vm("a", "h1")
    sim.add_volume("h3", "/var/lib/libvirt/images/a.qcow2", b"\0", "qcow2")
    sim.hosts["h3"].up = False
    r = rec_in(store, S.MIGRATING, dst="h3", uuid=dom.uuid, created=("/var/lib/libvirt/images/a.qcow2",))
    (first,) = recover(journal_of(store), sim.hypervisor, ARGS)
    assert first.state == S.NEEDS_ATTENTION and "unreachable" in first.detail
    assert "/var/lib/libvirt/images/a.qcow2" in sim.hosts["h3"].volumes  # kept: nobody could look
    (again,) = recover(journal_of(store), sim.hypervisor, ARGS)  # h3 still down: left as it is
    assert again == store.get_record(r.id) and again.state == S.NEEDS_ATTENTION
    sim.hosts["h3"].up = True
    (settled,) = recover(journal_of(store), sim.hypervisor, ARGS)
    assert (settled.id, settled.state, settled.outcome) == (r.id, S.FAILED, Reason.RECOVERED)
    assert "/var/lib/libvirt/images/a.qcow2" not in sim.hosts["h3"].volumes
    assert store.records_needing_attention() == ()


def test_a_needs_attention_a_human_must_decide_stays_untouched(sim: SimHosts, store: Store) -> None:
    both = sim.add_vm("both", "h1")
    sim.hosts["h2"].domains[both.uuid] = both
    sim.add_volume("h2", "/var/lib/libvirt/images/both.qcow2", b"\0", "qcow2")
    r = rec_in(store, S.VERIFYING, vm="both", uuid=both.uuid, created=("/var/lib/libvirt/images/both.qcow2",))
    (first,) = recover(journal_of(store), sim.hypervisor, ARGS)
    (second,) = recover(journal_of(store), sim.hypervisor, ARGS)
    assert first.state == second.state == S.NEEDS_ATTENTION and second == store.get_record(r.id)
    assert "/var/lib/libvirt/images/both.qcow2" in sim.hosts["h2"].volumes
    assert sim.where("both") == [("h1", "running"), ("h2", "running")]
