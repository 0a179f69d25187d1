"""A backing file on a target is used only once proven complete, whatever backing_verify says.

Simulated cluster (a second implementation of the Hypervisor seam) and a real SQLite store: a
partial copy, as a kill -9 mid-copy leaves it, is put on the target with the ledger row the
executor wrote before creating it; then the next move, or recovery, must never use it.
"""

from __future__ import annotations

import pytest

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.artifacts import registry_for
from balancer.executor.backing import Provisioning, StoragePlan, plan_storage, provision
from balancer.executor.cleanup import Cleanup
from balancer.executor.events import OutcomeStatus
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.journal import Journal, new_record
from balancer.executor.recovery import recover
from balancer.executor.runner import Runner
from balancer.model import MigrationRecord, Move, MoveCost, MoveState, TargetVolume
from balancer.reasons import Reason
from balancer.sim.hypervisor import BASE, SimHosts
from balancer.store import Store
from tests.leader import journal_of

S = MoveState
MIB = 1 << 20
OVERLAY = "/var/lib/libvirt/images/a.qcow2"


def args(verify: str) -> ExecutorArgs:
    return ExecutorArgs(poll_seconds=0.05, settle_seconds=1.0, memory_headroom_mib=0, backing_verify=verify)  # type: ignore[arg-type]


def move(vm: str, src: str, dst: str) -> Move:
    return Move(vm, src, dst, Reason.DRAIN, MoveCost(0, 0, 0, 0.0))


def migrate(sim: SimHosts, eps: dict[str, MigrationEndpoint], store: Store, verify: str, vm: str, dst: str):  # type: ignore[no-untyped-def]
    r = Runner(args(verify), LimitArgs(), sim.hypervisor, journal_of(store), eps)
    (out,) = r.wait([r.submit([move(vm, "h1", dst)])[0].id], timeout=20)
    r.shutdown(0)
    return out


def killed_mid_copy(sim: SimHosts, store: Store, host: str, state: MoveState) -> MigrationRecord:
    """What a kill -9 halfway through streaming the base to ``host`` leaves: a full-length file whose
    second half was never written, its ledger row, and a journal record in ``state``."""
    j = Journal(journal_of(store))
    rec = j.create(new_record(move("a", "h1", host), 1.0, 50))
    rec = j.move_to(j.move_to(rec, S.PRECHECKING), S.COPYING_BACKING)
    journal_of(store).save_target_volume(TargetVolume(host, BASE, "backing", "provisional", rec.id, 1.0))
    rec = j.update(rec, created_volumes=(BASE,), vm_uuid=sim.hypervisor("h1").domain("a").uuid)  # type: ignore[union-attr]
    whole = sim.hosts["h1"].volumes[BASE].data
    sim.hosts[host].volumes.pop(BASE, None)
    sim.add_volume(host, BASE, whole[: len(whole) // 2] + b"\0" * (len(whole) - len(whole) // 2), "raw")
    if state.final:
        rec = j.finish(rec, state, Reason.SHUTDOWN, None, "stopped", recovering=True)
    return rec


@pytest.mark.parametrize("verify", ["sha256", "size"])
def test_an_interrupted_copy_of_a_finished_move_is_removed_and_copied_again(
    sim, sim_endpoints, store, verify
) -> None:  # type: ignore[no-untyped-def]
    sim.add_vm("a", "h1")
    old = killed_mid_copy(sim, store, "h3", S.ABORTED)
    assert sim.digest("h3", BASE) != sim.digest("h1", BASE)
    out = migrate(sim, sim_endpoints, store, verify, "a", "h3")
    assert out.status == OutcomeStatus.SUCCEEDED, out.detail
    assert out.record.copy_mode == "incremental" and out.record.backing_bytes == len(
        sim.hosts["h1"].volumes[BASE].data
    )
    assert sim.digest("h3", BASE) == sim.digest("h1", BASE)  # what the VM's disk reads through on h3
    assert f"removed on h3: {BASE}" in out.detail
    row = store.target_volume("h3", BASE)
    assert row is not None and (row.state, row.record_id, row.sha256) == (
        "verified",
        out.record.id,
        sim.digest("h1", BASE),
    )
    assert store.target_volumes(record_id=old.id) == ()


@pytest.mark.parametrize("verify", ["sha256", "size"])
def test_an_unfinished_copy_is_refused_then_removed_by_recovery(sim, sim_endpoints, store, verify) -> None:  # type: ignore[no-untyped-def]
    # The killed move's record is still open (no recovery yet): maybe some process still writes the
    # file, so it is neither used nor removed; the VM travels whole instead.
    sim.add_vm("a", "h1")
    sim.add_vm("b", "h1")
    killed = killed_mid_copy(sim, store, "h3", S.COPYING_BACKING)
    partial = sim.digest("h3", BASE)
    out = migrate(sim, sim_endpoints, store, verify, "b", "h3")
    assert out.status == OutcomeStatus.SUCCEEDED, out.detail
    assert out.record.copy_mode == "full" and "unfinished copy of move" in out.detail
    assert sim.digest("h3", BASE) == partial  # not touched
    (rec, *_) = recover(journal_of(store), sim.hypervisor, args(verify))
    assert (rec.id, rec.state, rec.outcome) == (killed.id, S.ABORTED, Reason.SHUTDOWN)
    assert BASE not in sim.hosts["h3"].volumes and rec.removed_volumes == (BASE,)
    assert f"removed on h3: {BASE}" in rec.detail
    assert store.target_volumes(host="h3") == ()


def test_recovery_never_calls_a_move_killed_before_migrating_a_success(sim, sim_endpoints, store) -> None:  # type: ignore[no-untyped-def]
    # Issue 13, case 2: killed mid-copy; another move then took the VM to the target as a full copy;
    # recovery must not mark the killed move succeeded, and must remove its partial base.
    sim.add_vm("a", "h1")
    killed = killed_mid_copy(sim, store, "h3", S.COPYING_BACKING)
    out = migrate(sim, sim_endpoints, store, "sha256", "a", "h3")
    assert (out.status, out.record.copy_mode) == (OutcomeStatus.SUCCEEDED, "full")
    assert sim.where("a") == [("h3", "running")]
    outs = {r.id: r for r in recover(journal_of(store), sim.hypervisor, args("sha256"))}
    assert (outs[killed.id].state, outs[killed.id].outcome) == (S.ABORTED, Reason.SHUTDOWN)
    assert BASE not in sim.hosts["h3"].volumes
    assert OVERLAY in sim.hosts["h3"].volumes  # the VM's own disk, made by the later move


def test_an_image_cache_file_is_proven_by_sha256_once_even_with_size(sim, sim_endpoints, store) -> None:  # type: ignore[no-untyped-def]
    sim.add_vm("a", "h1")
    sim.add_vm("b", "h1")
    assert store.target_volume("h3", BASE) is None  # put there by an image cache, not by us
    out = migrate(sim, sim_endpoints, store, "size", "a", "h3")
    assert out.ok and "proven equal by sha256, now recorded complete" in out.detail
    assert sim.reads[("h3", BASE)] == 1 and sim.reads[("h1", BASE)] == 1
    out = migrate(sim, sim_endpoints, store, "size", "b", "h3")
    assert out.ok and "recorded complete, unchanged since" in out.detail
    assert sim.reads[("h3", BASE)] == 1  # size: the record is the proof


def test_a_recorded_file_written_since_is_proven_again_and_refused_if_it_differs(
    sim, sim_endpoints, store
) -> None:  # type: ignore[no-untyped-def]
    sim.add_vm("a", "h1")
    sim.add_vm("b", "h1")
    assert migrate(sim, sim_endpoints, store, "size", "a", "h3").ok
    vol = sim.hosts["h3"].volumes[BASE]
    sim.hypervisor("h3").write_volume(BASE, [b"X" + vol.data[1:]], len(vol.data))  # same size, new mtime
    out = migrate(sim, sim_endpoints, store, "size", "b", "h3")
    assert out.ok and out.record.copy_mode == "full" and "differs from the source's" in out.detail
    assert (
        sim.hosts["h3"].volumes[BASE].data[:1] == b"X"
    )  # not ours to remove: it was proven once, then changed


def test_a_short_copy_is_removed_at_once_and_never_recorded_complete(sim, sim_endpoints, store) -> None:  # type: ignore[no-untyped-def]
    sim.add_vm("a", "h1")
    del sim.hosts["h3"].volumes[BASE]
    sim.faults.short_writes = True
    out = migrate(sim, sim_endpoints, store, "size", "a", "h3")
    assert out.ok and out.record.copy_mode == "full" and "wrong size" in out.detail
    assert BASE not in sim.hosts["h3"].volumes
    assert out.record.created_volumes == (BASE, OVERLAY) and out.record.removed_volumes == (BASE,)
    assert f"removed on h3: {BASE}" in out.detail
    assert store.target_volumes() == ()  # the overlay is the VM's now; the base never was complete


def test_a_leftover_met_while_provisioning_is_replaced_under_the_moves_own_hold(sim, store) -> None:  # type: ignore[no-untyped-def]
    # the pre-check's sweep usually removes it first; here it shows up after (or the sweep could
    # not reach the host): provisioning removes it itself, though its own move holds the path
    dom = sim.add_vm("a", "h1")
    killed_mid_copy(sim, store, "h3", S.ABORTED)
    src, dst = sim.hypervisor("h1"), sim.hypervisor("h3")
    paths = (BASE, OVERLAY)
    plan = plan_storage(
        dom, {p: src.volume(p) for p in paths}, dst.pools(), {p: dst.volume(p) for p in paths}, "auto"
    )
    assert isinstance(plan, StoragePlan) and plan.backing[0].present
    registry = registry_for(journal_of(store))
    registry.hold("h3", BASE, +1)  # as MoveRun does for every backing file of its plan
    removed: list[Cleanup] = []
    done = provision(
        plan, src, dst, Provisioning("new", registry, "size", lambda _p: None, on_cleanup=removed.append)
    )
    assert (done.copy, done.created) == ("incremental", [BASE, OVERLAY])
    assert sim.digest("h3", BASE) == sim.digest("h1", BASE)
    assert [c.removed for c in removed] == [(BASE,)]


def test_two_moves_the_other_way_round_prove_the_same_base_without_waiting_for_each_other(
    sim, sim_endpoints, store
) -> None:  # type: ignore[no-untyped-def]
    # a on h1 -> h2 while b on h2 -> h1: each proves the base it finds on its target against its
    # source, which is the other's target; neither may wait for the other's lock on that file.
    # Slow look-ups make both hold their target's lock before either reads its source.
    sim.add_vm("a", "h1")
    sim.add_vm("b", "h2")
    sim.faults.read_seconds = 0.2
    sim.faults.lookup_seconds = 0.2
    r = Runner(args("sha256"), LimitArgs(**{"global": 2}), sim.hypervisor, journal_of(store), sim_endpoints)
    recs = r.submit([move("a", "h1", "h2"), move("b", "h2", "h1")])
    outs = r.wait([x.id for x in recs], timeout=30)
    assert len(outs) == 2 and all(o.ok for o in outs), [o.detail for o in outs]
    assert all("proven equal by sha256" in o.detail for o in outs)
