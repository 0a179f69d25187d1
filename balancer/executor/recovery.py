"""Reconcile journal records with what both hypervisors report, and remove what moves left behind.

With PEER2PEER the source libvirtd drives the migration, so a migration keeps going when the
balancer dies. ``reconcile(rec, ...)`` settles one record: safe to call from a worker thread, for
a record no living actor owns (the caller decides which). ``recover(...)`` does it at start-up for
every unfinished record, oldest first, looks again at every ``needs_attention`` record, and then
removes leftovers of finished moves on every host (``cleanup.sweep_leftovers``).

For an unfinished record:

* ``queued``: it never started → ``aborted`` (reason ``shutdown``);
* otherwise the domain is looked up (UUID, else name) on both hosts, waiting up to
  ``recovery_wait_seconds`` while the source still has a job and ``settle_seconds`` for a
  half-made domain on the target to go away, and ``ending.classify`` decides, as for a live move:
  a move left before libvirt was asked to migrate ends ``aborted`` (``shutdown``: nothing was
  tried, no quarantine) wherever the VM is now; running on the target only → ``succeeded``
  (``recovered``), the source's disk images removed as after any success (``source_cleanup``);
  running on the source only → ``failed`` (``recovered``); shut off on the source by its owner →
  ``failed`` (``source_stopped``); anything a human must decide → ``needs_attention``.
* the volumes the move created on the target are removed, kept or handed over to the VM as the
  ending says; the record keeps the bytes it journaled, raised to what libvirt reports for a
  completed migration.

A ``needs_attention`` record is looked at once (no waiting): it is finished in another state when
the hosts now settle it, and otherwise left as it is. Nothing is ever destroyed or undefined here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from balancer.errors import MigrationError
from balancer.executor.args import ExecutorArgs
from balancer.executor.artifacts import BackingRegistry, registry_for
from balancer.executor.cleanup import Cleanup, remove_move_volumes, remove_source_disks, sweep_leftovers
from balancer.executor.ending import EndFacts, Ending, TargetFate, classify
from balancer.executor.events import EventSink, Note, discard
from balancer.executor.hypervisor import Hypervisor
from balancer.executor.journal import Journal, JournalStore
from balancer.executor.verify import observe, settle
from balancer.model import MigrationRecord, MoveState
from balancer.reasons import Reason

S = MoveState


def recover(
    store: JournalStore,
    hypervisors: Callable[[str], Hypervisor],
    args: ExecutorArgs,
    sink: EventSink = discard,
    *,
    registry: BackingRegistry | None = None,
) -> list[MigrationRecord]:
    """Reconcile all unfinished records, oldest first, then look again at ``needs_attention`` ones
    and sweep leftovers; returns the records as they are now (one per record looked at). Each record
    is adopted into ``store``'s leader term first. (The service adopts through its Runner instead,
    which holds each record's admission slots while it reconciles; this is for tools and tests.)"""
    journal = Journal(store, sink)
    registry = registry if registry is not None else registry_for(store)
    pending = sorted(store.unfinished_records(), key=lambda r: r.created_at)
    pending += store.records_needing_attention()  # those left so by earlier runs, looked at again
    out = [reconcile(journal.adopt(rec), journal, hypervisors, args, registry=registry) for rec in pending]
    for done in sweep(hypervisors, registry):
        sink(Note("", "", None, f"recovery: {done.describe()}"))
    return out


def reconcile(
    rec: MigrationRecord,
    journal: Journal,
    hypervisors: Callable[[str], Hypervisor],
    args: ExecutorArgs,
    *,
    registry: BackingRegistry | None = None,
) -> MigrationRecord:
    """Settle one unfinished or ``needs_attention`` record from the hosts (see the module docstring)."""
    registry = registry if registry is not None else registry_for(journal.store)
    was = rec.state.value
    if rec.state.final and rec.state != S.NEEDS_ATTENTION:
        return rec
    if rec.state == S.QUEUED:
        why = "never started: the balancer stopped while it was queued"
        return journal.finish(rec, S.ABORTED, Reason.SHUTDOWN, None, why, recovering=True)
    try:
        src, dst = hypervisors(rec.source), hypervisors(rec.target)
    except KeyError as exc:
        if rec.state == S.NEEDS_ATTENTION:
            return rec
        why = f"recovery: host {exc} is no longer configured (was {was})"
        return journal.finish(rec, S.NEEDS_ATTENTION, Reason.NEEDS_ATTENTION, None, why, recovering=True)
    ref = rec.vm_uuid or rec.vm
    if rec.state == S.NEEDS_ATTENTION:
        reached = S.MIGRATING if rec.target_domain else S.COPYING_BACKING
        seen = observe(src, dst, ref)
    else:
        reached = rec.state
        seen = settle(src, dst, ref, args.settle_seconds, args.recovery_wait_seconds, args.poll_seconds)
    ending = classify(EndFacts(reached, seen, recovering=True))
    cleaned = _clean(rec, ending, src, dst, registry, args)
    lines = [c.describe() for c in cleaned if c.describe()]
    for line in lines:
        journal.sink(Note(rec.id, rec.vm, None, f"recovery: {line}"))
    removed = tuple(p for c in cleaned if c.host == dst.name for p in c.removed)
    if ending.state == S.NEEDS_ATTENTION and rec.state == S.NEEDS_ATTENTION:
        if not removed:
            return rec  # still for a human; nothing changed
        return journal.update(rec, removed_volumes=rec.removed_volumes + removed)
    summary = f"recovery of a move left in {was}: {ending.summary}"
    return journal.finish(
        rec,
        ending.state,
        ending.reason,
        None,
        "; ".join([summary, *lines]),
        recovering=True,
        removed_volumes=rec.removed_volumes + removed,
        **_figures(rec, dst, ending),
    )


def sweep(hypervisors: Callable[[str], Hypervisor], registry: BackingRegistry) -> list[Cleanup]:
    """Remove leftovers of finished moves on every host the ledger names; returns what each did."""
    out = []
    hosts = sorted({row.host for row in registry.rows(state="provisional") if registry.is_leftover(row)})
    for host in hosts:
        try:
            hv = hypervisors(host)
        except KeyError:
            continue  # a host no longer configured: nothing to reach
        done = sweep_leftovers(hv, registry)
        if done.describe():
            out.append(done)
    return out


def _clean(
    rec: MigrationRecord,
    ending: Ending,
    src: Hypervisor,
    dst: Hypervisor,
    registry: BackingRegistry,
    args: ExecutorArgs,
) -> list[Cleanup]:
    out = []
    if ending.target != TargetFate.KEEP:
        out.append(
            remove_move_volumes(
                rec.created_volumes, dst, registry, rec.id, hand_over=ending.target == TargetFate.HAND_OVER
            )
        )
    if ending.clean_source and args.source_cleanup == "delete" and args.keep_source_minutes == 0:
        assert ending.state == S.SUCCEEDED
        try:
            there = dst.domain(rec.vm_uuid or rec.vm)
        except MigrationError:
            there = None
        if there is not None:
            out.append(remove_source_disks([d.path for d in there.disks], src))
    return out


def _figures(rec: MigrationRecord, dst: Hypervisor, ending: Ending) -> dict[str, Any]:
    """The bytes the journal kept, raised to what libvirt reports for a completed migration."""
    if ending.state != S.SUCCEEDED:
        return {}
    try:
        done = dst.completed_stats(rec.vm_uuid or rec.vm)
    except MigrationError:
        return {}
    out: dict[str, Any] = {
        "disk_bytes": max(rec.disk_bytes, done.get("disk_processed", 0)),
        "memory_bytes": max(rec.memory_bytes, done.get("memory_processed", 0)),
    }
    if "downtime" in done and rec.downtime_ms is None:
        out["downtime_ms"] = float(done["downtime"])
    return out
