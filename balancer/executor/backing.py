"""Target disks and backing files, through libvirt alone (storage pools and volume streams).

libvirt pre-creates a destination disk only inside a storage pool whose directory matches, and
never for an incremental copy, so the executor prepares the target itself (Nova's
``pre_live_migration``):

* **incremental** (VIR_MIGRATE_NON_SHARED_INC, only the overlay travels): every backing file of
  the disk's chain must be on the target, in the pool whose directory holds its path, complete and
  equal to the source's. A missing one is copied from the source with ``download``/``upload``
  volume streams, hashed while streaming (with ``backing_verify: sha256`` also re-read on the
  target and compared), and only then recorded complete in the ledger (``artifacts``). One already
  there is used only when the ledger records it complete and it is unchanged since (with
  ``sha256``, also once per process equal by sha256 to the source's), or when a sha256 of both
  proves it equal (an image cache's file; then it is recorded). An interrupted copy is never
  used: it is removed and copied again once its move is over, and refused (whole disks copied
  instead) while its move may still be running. Then the overlay is pre-created with the same
  ``<backingStore>`` path and format and the same virtual size, and its chain is checked.
  An incremental copy onto a disk without its backing file "succeeds" while the base's data reads
  as zeros on the target; the chain check makes that impossible here.
* **full** (VIR_MIGRATE_NON_SHARED_DISK): when a backing file cannot be provided, when
  ``copy_mode: full``, or when no disk has a backing chain, a flat volume of the same virtual size
  and format is pre-created and libvirt copies the whole disk into it.

A target without a pool for a disk's directory fails the pre-check ``no_storage_pool`` (define a
dir pool on the target for that directory, e.g. ``virsh pool-define-as images dir --target DIR``).
Every volume the executor creates is written to the ledger and the journal *before* it is created,
so an abort, a failure or recovery can remove exactly those (``cleanup``); a copied backing file
only when nothing on the target uses it.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from balancer.errors import LibvirtErrorInfo, MigrationError
from balancer.executor.artifacts import BackingRegistry
from balancer.executor.cleanup import Cleanup, remove_move_volumes
from balancer.executor.facts import (
    ChainLink,
    CopyKind,
    DiskFacts,
    DomainFacts,
    PoolFacts,
    VolumeFacts,
    pool_for,
)
from balancer.executor.hypervisor import StorageHost
from balancer.reasons import Reason


@dataclass(frozen=True)
class BackingStep:
    """One backing file the target needs; ``present`` when a file of that name is already there (used
    only once proven, see ``provision``)."""

    path: str
    format: str
    pool: str
    length: int  # bytes of the file (what a copy streams)
    capacity: int
    present: bool


@dataclass(frozen=True)
class DiskStep:
    """One disk to pre-create on the target; ``backing`` set for an incremental overlay."""

    target: str
    path: str
    pool: str
    capacity: int
    format: str
    backing: ChainLink | None
    bytes_to_copy: int


@dataclass(frozen=True)
class StoragePlan:
    copy: CopyKind
    disks: tuple[DiskStep, ...]
    backing: tuple[BackingStep, ...] = ()
    why_full: str = ""

    def pool_needs(self) -> dict[str, int]:
        """Bytes each target pool receives: disk copies plus backing files streamed."""
        need: Counter[str] = Counter()
        for d in self.disks:
            need[d.pool] += d.bytes_to_copy
        for b in self.backing:
            if not b.present:
                need[b.pool] += b.length
        return dict(need)

    @property
    def bytes_to_copy(self) -> int:
        return sum(self.pool_needs().values())


@dataclass(frozen=True)
class StorageProblem:
    reason: Reason
    message: str


@dataclass
class Provisioned:
    """What ``provision`` did on the target (volumes in creation order) and the copy kind to use."""

    copy: CopyKind
    created: list[str] = field(default_factory=list)
    copied_backing: list[str] = field(default_factory=list)
    backing_bytes: int = 0
    notes: list[str] = field(default_factory=list)


class ProvisionError(Exception):
    def __init__(self, reason: Reason, message: str, error: LibvirtErrorInfo | None = None) -> None:
        self.reason, self.message, self.error = reason, message, error
        super().__init__(message)


def plan_storage(
    dom: DomainFacts,
    src_volumes: Mapping[str, VolumeFacts | None],
    dst_pools: list[PoolFacts],
    dst_volumes: Mapping[str, VolumeFacts | None],
    mode: str,
) -> StoragePlan | StorageProblem:
    """Decide incremental vs full and what to create where; pure over facts gathered by pre-checks."""
    why_full = "copy_mode is full" if mode == "full" else ""
    backing: dict[str, BackingStep] = {}
    for d in dom.disks:
        if src_volumes.get(d.path) is None:
            return StorageProblem(
                Reason.NO_STORAGE_POOL,
                f"disk {d.target} ({d.path}) is not a volume of a storage pool on the source",
            )
        if pool_for(d.path, dst_pools) is None:
            return StorageProblem(
                Reason.NO_STORAGE_POOL,
                f"target has no active storage pool for {os.path.dirname(d.path)} (disk {d.target}); "
                f"define a dir pool there",
            )
        if dst_volumes.get(d.path) is not None:
            return StorageProblem(
                Reason.TARGET_DISK_EXISTS,
                f"target already has {d.path} (disk {d.target}); not overwriting it",
            )
        if why_full:
            continue
        steps, problem = _chain_steps(d, src_volumes, dst_pools, dst_volumes)
        if problem:
            why_full = problem
        for s in steps:
            backing.setdefault(s.path, s)
    if not why_full and not any(d.backing for d in dom.disks):
        why_full = "no disk has a backing file"
    copy: CopyKind = "full" if why_full else "incremental"
    disks = tuple(_disk_step(d, src_volumes[d.path], dst_pools, copy) for d in dom.disks)
    return StoragePlan(copy, disks, () if why_full else tuple(backing.values()), why_full)


def _chain_steps(
    d: DiskFacts,
    src_volumes: Mapping[str, VolumeFacts | None],
    dst_pools: list[PoolFacts],
    dst_volumes: Mapping[str, VolumeFacts | None],
) -> tuple[list[BackingStep], str]:
    steps = []
    for link in d.backing:
        pool = pool_for(link.path, dst_pools)
        src, dst = src_volumes.get(link.path), dst_volumes.get(link.path)
        if pool is None:
            return [], f"target has no storage pool for backing file {link.path}"
        if dst is not None:
            if src is not None and (dst.capacity, dst.physical) != (src.capacity, src.physical):
                return [], f"target's {link.path} differs in size from the source's"
            size = src if src is not None else dst
            steps.append(BackingStep(link.path, link.format, pool.name, size.physical, size.capacity, True))
        elif src is None:
            return [], f"backing file {link.path} is in no storage pool on the source, cannot stream it"
        else:
            steps.append(BackingStep(link.path, link.format, pool.name, src.physical, src.capacity, False))
    return steps, ""


def _disk_step(d: DiskFacts, src: VolumeFacts | None, pools: list[PoolFacts], copy: CopyKind) -> DiskStep:
    assert src is not None
    pool = pool_for(d.path, pools)
    assert pool is not None
    if copy == "incremental" and d.backing:
        return DiskStep(d.target, d.path, pool.name, src.capacity, "qcow2", d.backing[0], src.allocation)
    fmt = d.format if d.format in ("qcow2", "raw") else "qcow2"
    return DiskStep(
        d.target, d.path, pool.name, src.capacity, fmt, None, min(src.capacity, _chain_alloc(src, d))
    )


def _chain_alloc(src: VolumeFacts, d: DiskFacts) -> int:
    """A full copy writes at most the virtual size; a flat disk only what it has allocated."""
    return src.capacity if d.backing else src.allocation


@dataclass(frozen=True)
class Provisioning:
    """How ``provision`` works for one move: its journal id, the registry, the proof asked for.

    The caller holds each backing file of the plan in the registry (one hold each) while it runs.
    """

    record_id: str
    registry: BackingRegistry
    verify: str  # ExecutorArgs.backing_verify: sha256 | size
    on_created: Callable[[str], None]  # called *before* a volume is created (write-ahead)
    on_bytes: Callable[[int], None] = lambda _n: None
    on_cleanup: Callable[[Cleanup], None] = lambda _c: None  # what removing a leftover or partial did


def provision(plan: StoragePlan, src: StorageHost, dst: StorageHost, how: Provisioning) -> Provisioned:
    """Make the target ready for ``plan`` (falling back to full when a backing file cannot be provided)."""
    done = Provisioned(plan.copy)
    disks = plan.disks
    if plan.copy == "incremental":
        try:
            for step in reversed(plan.backing):  # deepest first
                _ensure_backing(step, src, dst, how, done)
        except ProvisionError as exc:
            done.notes.append(f"backing file not provided ({exc.message}); copying whole disks")
            done.copy = "full"
            disks = tuple(_as_full(d) for d in disks)
    for d in disks:
        _create_disk(d, dst, how, done)
    return done


def _as_full(d: DiskStep) -> DiskStep:
    return DiskStep(d.target, d.path, d.pool, d.capacity, "qcow2", None, d.capacity)


def _ensure_backing(
    step: BackingStep, src: StorageHost, dst: StorageHost, how: Provisioning, done: Provisioned
) -> None:
    with how.registry.lock(dst.name, step.path):
        try:
            there = dst.volume(step.path)
            if there is not None:
                note = _use_existing(step, there, src, dst, how)
                if note:
                    done.notes.append(note)
                    return
            _copy(step, src, dst, how, done)
        except MigrationError as exc:
            _drop_partial(step.path, dst, how, done)
            raise ProvisionError(Reason.BACKING_UNAVAILABLE, str(exc), exc.info) from exc
        except ProvisionError:
            _drop_partial(step.path, dst, how, done)
            raise


def _use_existing(
    step: BackingStep, there: VolumeFacts, src: StorageHost, dst: StorageHost, how: Provisioning
) -> str:
    """Whether the file already on the target may be used: a note saying why, or "" after removing
    a leftover of an interrupted copy (then the caller copies). Raises ProvisionError to refuse it."""
    registry, host = how.registry, dst.name
    row = registry.row(host, step.path)
    if row is not None and row.state == "provisional":
        if not registry.is_leftover(row):
            raise ProvisionError(
                Reason.BACKING_UNAVAILABLE,
                f"{step.path} on {host} is an unfinished copy of move {row.record_id}, never proven complete",
            )
        gone = remove_move_volumes([step.path], dst, registry, row.record_id, own_holds=1)
        how.on_cleanup(gone)
        if step.path not in gone.removed:
            raise ProvisionError(
                Reason.BACKING_UNAVAILABLE,
                f"{step.path} on {host} is an interrupted copy that could not be removed: {gone.describe()}",
            )
        return ""
    if (there.capacity, there.physical) != (step.capacity, step.length):
        raise ProvisionError(
            Reason.BACKING_UNAVAILABLE, f"target's {step.path} differs in size from the source's"
        )
    recorded = row is not None and (row.length, row.capacity, row.mtime) == (
        there.physical,
        there.capacity,
        there.mtime,
    )
    if recorded and how.verify == "size":
        return f"reused {step.path} on {host} (recorded complete, unchanged since)"
    # sha256 asked for, or a file we never recorded (an image cache's, or one rewritten since):
    # prove it equal to the source's, whatever backing_verify says. Both are read at once (two
    # hosts, two libvirtds); moves to other targets wait for the source's digest instead of
    # reading the same file again.
    source = src.volume(step.path)
    if source is None:
        raise ProvisionError(Reason.BACKING_UNAVAILABLE, f"{step.path} is gone from {src.name}")
    with ThreadPoolExecutor(1, thread_name_prefix=f"sha256-{src.name}") as pool:
        ours = pool.submit(_sha256_locked, src, source, registry)
        theirs = _sha256(dst, there, registry)
        if theirs != ours.result():
            raise ProvisionError(
                Reason.BACKING_UNAVAILABLE, f"target's {step.path} differs from the source's"
            )
    if not recorded:
        registry.verified(host, there, how.record_id, theirs)
        return f"reused {step.path} on {host} (proven equal by sha256, now recorded complete)"
    return f"reused {step.path} on {host} (sha256 equal to the source's)"


def _copy(
    step: BackingStep, src: StorageHost, dst: StorageHost, how: Provisioning, done: Provisioned
) -> None:
    """Stream the source's file into a new volume; record it complete only once that is proven."""
    registry, host = how.registry, dst.name
    registry.forget(host, step.path)
    registry.intend(host, step.path, "backing", how.record_id)
    how.on_created(step.path)
    dst.create_volume(step.pool, os.path.basename(step.path), step.length, "raw", None)
    done.created.append(step.path)
    done.copied_backing.append(step.path)
    digest = hashlib.sha256()
    sent = dst.write_volume(
        step.path, _tap(src.read_volume(step.path, step.length), digest, how.on_bytes), step.length
    )
    done.backing_bytes += sent
    copied = dst.volume(step.path)
    if sent != step.length or copied is None or copied.physical != step.length:
        raise ProvisionError(Reason.BACKING_UNAVAILABLE, f"copy of {step.path} has the wrong size")
    if how.verify == "sha256" and _sha256(dst, copied, registry, fresh=True) != digest.hexdigest():
        raise ProvisionError(Reason.BACKING_UNAVAILABLE, f"copy of {step.path} does not match the source")
    registry.verified(host, copied, how.record_id, digest.hexdigest())
    registry.remember(host, copied, digest.hexdigest())
    done.notes.append(
        f"copied {step.path} to {host}: {sent} bytes, sha256 {digest.hexdigest()[:16]}, recorded complete"
    )


def _drop_partial(path: str, dst: StorageHost, how: Provisioning, done: Provisioned) -> None:
    """Remove our own unproven copy after a failed attempt (nothing else can use it yet)."""
    if path not in done.copied_backing:
        how.registry.release(dst.name, path, how.record_id)  # not created (or not by us)
        return
    gone = remove_move_volumes([path], dst, how.registry, how.record_id, own_holds=1)
    how.on_cleanup(gone)
    if path in gone.removed:
        done.created.remove(path)
        done.copied_backing.remove(path)


def _sha256_locked(hv: StorageHost, vol: VolumeFacts, registry: BackingRegistry) -> str:
    # a lock of its own, taken last and holding no other: the caller holds its target's lock on
    # the same path, and a move the other way round holds this host's (one lock per (host, path)
    # would let two such moves wait for each other)
    with registry.lock(f"sha256 {hv.name}", vol.path):
        return _sha256(hv, vol, registry)


def _sha256(hv: StorageHost, vol: VolumeFacts, registry: BackingRegistry, fresh: bool = False) -> str:
    known = None if fresh else registry.digest(hv.name, vol)
    if known is not None:
        return known
    digest = hashlib.sha256()
    for chunk in hv.read_volume(vol.path, vol.physical):
        digest.update(chunk)
    registry.remember(hv.name, vol, digest.hexdigest())
    return digest.hexdigest()


def _tap(chunks: Iterable[bytes], digest: hashlib._Hash, on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        on_bytes(len(chunk))
        yield chunk


def _create_disk(d: DiskStep, dst: StorageHost, how: Provisioning, done: Provisioned) -> None:
    how.registry.intend(dst.name, d.path, "disk", how.record_id)
    how.on_created(d.path)
    try:
        vol = dst.create_volume(d.pool, os.path.basename(d.path), d.capacity, d.format, d.backing)
    except MigrationError as exc:
        how.registry.release(dst.name, d.path, how.record_id)  # not created: the path is not ours
        raise ProvisionError(Reason.PROVISION_FAILED, str(exc), exc.info) from exc
    done.created.append(d.path)
    try:
        if d.backing is not None:
            _verify_chain(vol, d, dst)
    except MigrationError as exc:
        raise ProvisionError(Reason.PROVISION_FAILED, str(exc), exc.info) from exc


def _verify_chain(vol: VolumeFacts, d: DiskStep, dst: StorageHost) -> None:
    """The pre-created overlay must name the source's backing file and that file must exist."""
    assert d.backing is not None
    if vol.backing is None or (vol.backing.path, vol.backing.format) != (d.backing.path, d.backing.format):
        raise ProvisionError(
            Reason.PROVISION_FAILED,
            f"pre-created {d.path} on {dst.name} has backing {vol.backing}, expected {d.backing}",
        )
    if dst.volume(d.backing.path) is None:
        raise ProvisionError(
            Reason.PROVISION_FAILED, f"backing file {d.backing.path} is missing on {dst.name}"
        )
