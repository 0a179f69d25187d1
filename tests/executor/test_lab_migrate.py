"""Real live block migrations in the lab: INC with the base present, base streamed first, the cap, limits."""

from __future__ import annotations

import threading
from contextlib import closing

import libvirt
import pytest
from exec_labkit import BASE, CALM, MIB, copies, endpoints, ensure_base, make_runner, running_on, wait_for

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import OutcomeStatus
from balancer.executor.libvirt_hypervisor import LibvirtHypervisor
from balancer.lab import Lab
from balancer.model import Move, MoveCost, MoveState
from balancer.reasons import Reason
from balancer.store import Store

pytestmark = pytest.mark.lab


def move(vm: str, src: str, dst: str) -> Move:
    return Move(vm, src, dst, Reason.DRAIN, MoveCost(0, 0, 0, 0.0))


def migrate_and_check(lab: Lab, store: Store, guest, src: str, dst: str, **runner_kw):  # type: ignore[no-untyped-def]
    """Migrate ``guest`` and check everything a live block migration must keep."""
    before = lab.disk_checksum(src, guest.name, skip_mib=guest.disk_window_mib)
    beat = lab.wait_heartbeat(src, guest.name)
    runner, events = make_runner(lab, store, **runner_kw)
    rec = runner.submit([move(guest.name, src, dst)])[0]
    (out,) = runner.wait([rec.id], timeout=180)
    assert out.status == OutcomeStatus.SUCCEEDED, (out.reason, out.detail)
    assert copies(lab, guest.name) == [(dst, "running")]
    lab.wait_live_arrival(dst, guest.name, after=beat)
    assert lab.disk_checksum(dst, guest.name, skip_mib=guest.disk_window_mib) == before
    saved = store.get_record(rec.id)
    assert saved.state == MoveState.SUCCEEDED and saved.outcome == Reason.SUCCEEDED
    return out, events


def test_incremental_with_base_on_target(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    guest = lab_guest(host="h1")  # default load: dirties 8 MiB/s of RAM, 1 MiB/s of disk as it moves
    ensure_base(lab, "h2", present=True)
    out, _ = migrate_and_check(lab, store, guest, "h1", "h2")
    rec = out.record
    assert rec.copy_mode == "incremental" and rec.backing_bytes == 0
    assert 60 * MIB <= rec.disk_bytes <= 80 * MIB  # the 64 MiB overlay, not the 128 MiB disk
    assert rec.created_volumes == (f"/var/lib/libvirt/images/{guest.name}.qcow2",)
    assert rec.downtime_ms is not None and rec.memory_bytes > 0
    assert "reused /var/lib/libvirt/base/labguest-base.raw" in rec.detail


def test_backing_streamed_to_target_first(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    guest = lab_guest(host="h2", **CALM)
    ensure_base(lab, "h3", present=False)
    out, _ = migrate_and_check(lab, store, guest, "h2", "h3")
    rec = out.record
    assert rec.copy_mode == "incremental"
    assert rec.backing_bytes == 128 * MIB  # the raw base, streamed through libvirt and verified
    assert "copied /var/lib/libvirt/base/labguest-base.raw" in rec.detail
    # the copy is the source's base byte for byte (the guest-visible disk was compared above)
    assert lab.disk_checksum("h3", BASE) == lab.disk_checksum("h2", BASE)


def test_bandwidth_cap_is_honoured(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    guest = lab_guest(host="h1", **CALM)
    ensure_base(lab, "h3", present=True)
    cap = 20
    out, events = migrate_and_check(lab, store, guest, "h1", "h3", limits=LimitArgs(bandwidth_mib_s=cap))
    samples = [p for _, p in events.progress(out.record.id) if p.phase in ("disk", "memory")]
    moving = [p for p in samples if p.bytes_copied > 0]
    first, last = moving[0], moving[-1]
    rate = (last.bytes_copied - first.bytes_copied) / (last.elapsed_s - first.elapsed_s) / MIB
    print(f"throughput {rate:.1f} MiB/s at a {cap} MiB/s cap over {last.elapsed_s - first.elapsed_s:.1f} s")
    assert cap * 0.85 <= rate <= cap * 1.15


def test_limits_hold_with_three_hosts_and_four_moves(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    small = {**CALM, "memory_mib": 96, "overlay_mib": 8}
    guests = [lab_guest(host=h, wait=False, **small) for h in ("h1", "h1", "h2", "h3")]
    for h in ("h1", "h2", "h3"):
        ensure_base(lab, h, present=True)
    for g in guests:
        lab.wait_heartbeat(g.host, g.name, timeout=90)
    limits = LimitArgs(
        **{"global": 2}, per_source=1, per_target=1, bandwidth_mib_s=50, host_bandwidth_mib_s=100
    )
    runner, events = make_runner(lab, store, limits=limits)
    plan = [
        move(guests[0].name, "h1", "h2"),
        move(guests[1].name, "h1", "h3"),
        move(guests[2].name, "h2", "h3"),
        move(guests[3].name, "h3", "h1"),
    ]
    recs = runner.submit(plan)
    outs = runner.wait([r.id for r in recs], timeout=300)
    failed = [(o.reason, o.detail) for o in outs if o.status != OutcomeStatus.SUCCEEDED]
    assert failed == []
    spans = []
    for r, m in zip(recs, plan, strict=True):
        st = events.states(r.id)
        start = next(t for t, s in st if s == MoveState.PRECHECKING)
        end = next(t for t, s in st if s.final)
        spans.append((m.source, m.target, start, end))
    for src, dst, start, _ in spans:
        live = [s for s in spans if s[2] <= start < s[3]]
        assert len(live) <= 2
        assert sum(s[0] == src for s in live) <= 1 and sum(s[1] == dst for s in live) <= 1
    for g, m in zip(guests, plan, strict=True):
        assert running_on(lab, g.name) == [m.target]
    assert max(len([s for s in spans if s[2] <= t < s[3]]) for _, _, t, _ in spans) == 2  # it did overlap


def test_pool_facts_are_read_while_a_volume_of_the_pool_is_being_built(lab: Lab) -> None:
    """While libvirt builds, clones or wipes a volume (another move creating its overlay on this
    host), it refuses to refresh the pool with an internal error "has asynchronous jobs running";
    that once failed the pre-check of a second move touching the same host. The sizes libvirt last
    computed are used instead. A wipe of a 1 GiB volume holds the pool busy long enough to see it."""
    uri = lab.host("h1").control_uri
    with closing(libvirt.open(uri)) as conn, closing(libvirt.open(uri)) as wiper:
        pool = conn.storagePoolLookupByName("images")
        xml = "<volume><name>busy-probe.raw</name><capacity unit='MiB'>1024</capacity></volume>"
        volume = pool.createXML(xml, 0)
        wipe = threading.Thread(target=wiper.storageVolLookupByKey(volume.key()).wipe, args=(0,))
        try:
            wipe.start()
            wait_for("the pool busy with the wipe", lambda: _refusing_refresh(pool), 30, every=0.01)
            facts = {p.name: p for p in LibvirtHypervisor(endpoints(lab)["h1"]).pools()}
            still_busy = _refusing_refresh(pool)  # so pools() ran while the pool was busy
            assert facts["images"].active and facts["images"].available > 0
            assert still_busy, "the wipe ended too soon to prove anything; make the volume larger"
        finally:
            wipe.join(120)
            volume.delete(0)


def _refusing_refresh(pool: libvirt.virStoragePool) -> bool | None:
    try:
        pool.refresh(0)
    except libvirt.libvirtError as exc:
        if "asynchronous jobs running" in str(exc):
            return True
        raise
    return None


def test_precheck_refuses_target_without_memory_or_disk(lab: Lab, lab_guest, store: Store) -> None:  # type: ignore[no-untyped-def]
    guest = lab_guest(host="h1", wait=False, **CALM)
    wait_for("guest running", lambda: running_on(lab, guest.name) == ["h1"], 30)
    runner, _ = make_runner(lab, store, args=ExecutorArgs(memory_headroom_mib=10_000_000))
    (out,) = runner.wait([runner.submit([move(guest.name, "h1", "h2")])[0].id], timeout=60)
    assert (out.status, out.reason, out.record.state) == (
        OutcomeStatus.REFUSED,
        Reason.TARGET_NO_MEMORY,
        MoveState.REFUSED,
    )
    assert "MiB free" in out.detail
    runner, _ = make_runner(
        lab, store, args=ExecutorArgs(memory_headroom_mib=0, disk_headroom_mib=10_000_000)
    )
    (out,) = runner.wait([runner.submit([move(guest.name, "h1", "h2")])[0].id], timeout=60)
    assert (out.status, out.reason) == (OutcomeStatus.REFUSED, Reason.TARGET_NO_DISK)
    assert "pool images" in out.detail or "pool base" in out.detail
    assert copies(lab, guest.name) == [("h1", "running")]
    assert out.record.created_volumes == ()
    assert store.recent_moves(0.0)[-1].refused  # nothing was tried: no quarantine
