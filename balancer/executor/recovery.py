"""At start-up: reconcile every unfinished journal record with what both hypervisors report.

With PEER2PEER the source libvirtd drives the migration, so a migration keeps going when the
balancer dies. For each record that is not final:

* ``queued``: it never started → ``aborted`` (reason ``shutdown``);
* otherwise the domain is looked up (UUID, else name) on both hosts, waiting up to
  ``recovery_wait_seconds`` while the source still has a job and ``settle_seconds`` for a
  half-made domain on the target to go away, then:

  - running on the target only → ``succeeded`` (outcome ``recovered``); the source's own disk
    images are removed as after any success (``source_cleanup``);
  - running on the source only, nothing on the target → ``failed`` (outcome ``recovered``); the
    volumes this move pre-created on the target are removed when nothing there uses them. A move
    left before libvirt was asked to migrate (prechecking, copying_backing) ends ``aborted`` with
    outcome ``shutdown`` instead: nothing was tried, so the VM is not quarantined;
  - anything else (both, neither, paused, a host unreachable) → ``needs_attention`` with the facts.

Nothing is ever destroyed or undefined here; the journal records what was seen.
"""

from __future__ import annotations

from collections.abc import Callable

from balancer.executor import backing
from balancer.executor.args import ExecutorArgs
from balancer.executor.events import EventSink, discard
from balancer.executor.hypervisor import Hypervisor
from balancer.executor.journal import Journal, JournalStore
from balancer.executor.verify import Placement, settle
from balancer.model import MigrationRecord, MoveState
from balancer.reasons import Reason


def recover(
    store: JournalStore,
    hypervisors: Callable[[str], Hypervisor],
    args: ExecutorArgs,
    sink: EventSink = discard,
) -> list[MigrationRecord]:
    """Reconcile all unfinished records, oldest first, adopting each into ``store``'s leader term first;
    returns their final records. (The service adopts through its Runner instead, which holds each
    record's admission slots while it reconciles; this is for tools and tests.)"""
    journal = Journal(store, sink)
    pending = sorted(store.unfinished_records(), key=lambda r: r.created_at)
    return [reconcile(journal.adopt(rec), journal, hypervisors, args) for rec in pending]


def reconcile(
    rec: MigrationRecord, journal: Journal, hypervisors: Callable[[str], Hypervisor], args: ExecutorArgs
) -> MigrationRecord:
    """Decide one record's final state from the hosts, as described in the module docstring."""
    was = rec.state.value
    if rec.state == MoveState.QUEUED:
        return journal.finish(
            rec,
            MoveState.ABORTED,
            Reason.SHUTDOWN,
            None,
            "never started: the balancer stopped while it was queued",
            recovering=True,
        )
    try:
        src, dst = hypervisors(rec.source), hypervisors(rec.target)
    except KeyError as exc:
        return journal.finish(
            rec,
            MoveState.NEEDS_ATTENTION,
            Reason.NEEDS_ATTENTION,
            None,
            f"recovery: host {exc} is no longer configured (was {was})",
            recovering=True,
        )
    ref = rec.vm_uuid or rec.vm
    seen = settle(src, dst, ref, args.settle_seconds, args.recovery_wait_seconds, args.poll_seconds)
    facts = f"recovery of a move left in {was}: {seen.describe()}"
    if seen.placement == Placement.TARGET_ONLY:
        notes: list[str] = []
        if args.source_cleanup == "delete" and args.keep_source_minutes == 0 and seen.target is not None:
            removed, problems = backing.remove_source_disks([d.path for d in seen.target.disks], src)
            notes = ([f"removed on {src.name}: {', '.join(removed)}"] if removed else []) + problems
        return journal.finish(
            rec, MoveState.SUCCEEDED, Reason.RECOVERED, None, "; ".join([facts, *notes]), recovering=True
        )
    if seen.placement == Placement.SOURCE_ONLY and not seen.target_error:
        problems = backing.remove_created(rec.created_volumes, rec.created_volumes, dst)
        left = tuple(p for p in rec.created_volumes if any(p in q for q in problems))
        if rec.state in (MoveState.PRECHECKING, MoveState.COPYING_BACKING):
            # The balancer stopped before libvirt was asked to migrate: nothing was tried, so the VM
            # is not quarantined (outcome ``shutdown``) and the next plan may move it again.
            return journal.finish(
                rec,
                MoveState.ABORTED,
                Reason.SHUTDOWN,
                None,
                "; ".join([facts + " (interrupted before the migration started)", *problems]),
                recovering=True,
                created_volumes=left,
            )
        return journal.finish(
            rec,
            MoveState.FAILED,
            Reason.RECOVERED,
            None,
            "; ".join([facts, *problems]),
            recovering=True,
            created_volumes=left,
        )
    return journal.finish(
        rec, MoveState.NEEDS_ATTENTION, Reason.NEEDS_ATTENTION, None, facts, recovering=True
    )
