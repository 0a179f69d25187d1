"""The migration journal: upsert by id, every field kept, unfinished records, history for cooldowns."""

from __future__ import annotations

import pytest

from balancer.errors import NotFound
from balancer.model import MoveState, PastMove
from balancer.reasons import Reason
from balancer.store import Store

from .builders import record


def test_every_field_round_trips(store: Store) -> None:
    full = record(
        "m-full",
        vm_uuid="0f4c-uuid",
        plan_id=7,
        bandwidth_mib_s=512,
        copy_mode="full",
        started_at=101.5,
        finished_at=160.25,
        state=MoveState.FAILED,
        predicted_bytes=(40 << 30) + 1,
        backing_bytes=3 << 30,
        disk_bytes=(35 << 30) + 17,
        memory_bytes=8 << 30,
        downtime_ms=12.5,
        outcome=Reason.NOT_CONVERGING,
        error_code=38,
        error_domain=10,
        error_message="operation failed: migration job: unexpectedly failed — ünïcode",
        detail="dirty rate 900 MiB/s above the 500 MiB/s cap",
        created_volumes=("/var/lib/libvirt/images/vm1.qcow2", "/var/lib/libvirt/images/vm1-data.qcow2"),
        target_domain="0f4c-uuid",
        removed_volumes=("/var/lib/libvirt/images/vm1-data.qcow2",),
    )
    store.save_record(full)
    assert store.get_record("m-full") == full
    minimal = record("m-min")
    store.save_record(minimal)
    assert store.get_record("m-min") == minimal


def test_saving_again_replaces_the_record(store: Store) -> None:
    store.save_record(record("m1", state=MoveState.QUEUED, updated_at=100.0))
    store.save_record(record("m1", state=MoveState.MIGRATING, updated_at=110.0, started_at=105.0))
    done = record(
        "m1",
        state=MoveState.SUCCEEDED,
        updated_at=130.0,
        started_at=105.0,
        finished_at=130.0,
        outcome=Reason.SUCCEEDED,
        created_volumes=("v1",),
    )
    store.save_record(done)
    assert store.get_record("m1") == done
    assert store.records() == (done,)


def test_an_unknown_record_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        store.get_record("nope")


def test_unfinished_records_are_the_ones_not_in_a_final_state(store: Store) -> None:
    states = list(MoveState)
    for i, state in enumerate(states):
        store.save_record(record(f"m{i}", state=state, created_at=100.0 - i))
    unfinished = store.unfinished_records()
    assert [r.state for r in unfinished] == [s for s in reversed(states) if not s.final]
    assert {s for s in states if not s.final} == {
        MoveState.QUEUED,
        MoveState.PRECHECKING,
        MoveState.COPYING_BACKING,
        MoveState.MIGRATING,
        MoveState.VERIFYING,
    }


def test_records_filter_by_time_and_vm_newest_first(store: Store) -> None:
    for i in range(6):
        store.save_record(record(f"m{i}", vm=f"vm{i % 2}", created_at=100.0 + i))
    assert [r.id for r in store.records()] == ["m5", "m4", "m3", "m2", "m1", "m0"]
    assert [r.id for r in store.records(since=103.0)] == ["m5", "m4", "m3"]
    assert [r.id for r in store.records(vm="vm1")] == ["m5", "m3", "m1"]
    assert [r.id for r in store.records(vm="vm0", since=101.0, limit=1)] == ["m4"]


def test_recent_moves_come_from_finished_records(store: Store) -> None:
    store.save_record(record("ok", vm="a", state=MoveState.SUCCEEDED, finished_at=200.0))
    store.save_record(record("bad", vm="b", state=MoveState.FAILED, finished_at=210.0, source="n3"))
    store.save_record(record("stop", vm="c", state=MoveState.ABORTED, finished_at=220.0))
    store.save_record(record("odd", vm="d", state=MoveState.NEEDS_ATTENTION, updated_at=230.0))
    store.save_record(record("old", vm="e", state=MoveState.SUCCEEDED, finished_at=100.0))
    store.save_record(record("busy", vm="f", state=MoveState.MIGRATING, updated_at=240.0))

    assert store.recent_moves(since=150.0) == (
        PastMove(vm="a", source="n1", target="n2", finished_at=200.0, succeeded=True),
        PastMove(vm="b", source="n3", target="n2", finished_at=210.0, succeeded=False),
        PastMove(vm="c", source="n1", target="n2", finished_at=220.0, succeeded=False),
        PastMove(vm="d", source="n1", target="n2", finished_at=230.0, succeeded=False),
    )
    assert [m.vm for m in store.recent_moves(since=0.0)] == ["e", "a", "b", "c", "d"]
    assert store.recent_moves(since=231.0) == ()


def test_moves_never_tried_do_not_quarantine(store: Store) -> None:
    """A move stopped by a shutdown before it started, or skipped because the VM was already elsewhere,
    says nothing about the VM: it is not in recent_moves (no quarantine); a real failure is."""
    from dataclasses import replace as _replace

    from balancer.model import MigrationRecord, MoveState
    from balancer.reasons import Reason

    base = MigrationRecord(
        id="x",
        vm="v",
        source="a",
        target="b",
        reason=Reason.DRAIN,
        state=MoveState.ABORTED,
        created_at=10.0,
        updated_at=11.0,
        finished_at=11.0,
    )
    store.save_record(_replace(base, id="shut", vm="v1", outcome=Reason.SHUTDOWN))
    store.save_record(_replace(base, id="skip", vm="v2", outcome=Reason.VM_ALREADY_ON_TARGET))
    store.save_record(
        _replace(base, id="fail", vm="v3", state=MoveState.FAILED, outcome=Reason.MIGRATION_FAILED)
    )
    store.save_record(
        _replace(base, id="full", vm="v4", state=MoveState.REFUSED, outcome=Reason.TARGET_NO_DISK)
    )
    # a refusal comes back marked as one: the planner keeps v4 off b for a while, without quarantine
    assert [(p.vm, p.succeeded, p.refused) for p in store.recent_moves(0.0)] == [
        ("v3", False, False),
        ("v4", False, True),
    ]


def test_records_needing_attention_oldest_first(store: Store) -> None:
    store.save_record(record("n2", state=MoveState.NEEDS_ATTENTION, created_at=20.0))
    store.save_record(record("ok", state=MoveState.SUCCEEDED, created_at=5.0))
    store.save_record(record("n1", state=MoveState.NEEDS_ATTENTION, created_at=10.0))
    assert [r.id for r in store.records_needing_attention()] == ["n1", "n2"]
