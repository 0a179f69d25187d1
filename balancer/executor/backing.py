"""Target disks and backing files, through libvirt alone (storage pools and volume streams).

libvirt pre-creates a destination disk only inside a storage pool whose directory matches, and
never for an incremental copy, so the executor prepares the target itself (Nova's
``pre_live_migration``):

* **incremental** (VIR_MIGRATE_NON_SHARED_INC, only the overlay travels): every backing file of
  the disk's chain must be on the target, in the pool whose directory holds its path. One already
  there is reused after proving it equal (size, and sha256 of both streamed through libvirt); a
  missing one is copied from the source with ``download``/``upload`` volume streams, hashed while
  streaming and verified by re-reading it on the target. Then the overlay is pre-created with the
  same ``<backingStore>`` path and format and the same virtual size, and its chain is checked.
  An incremental copy onto a disk without its backing file "succeeds" while the base's data reads
  as zeros on the target; the chain check makes that impossible here.
* **full** (VIR_MIGRATE_NON_SHARED_DISK): when a backing file cannot be provided, when
  ``copy_mode: full``, or when no disk has a backing chain, a flat volume of the same virtual size
  and format is pre-created and libvirt copies the whole disk into it.

A target without a pool for a disk's directory fails the pre-check ``no_storage_pool`` (define a
dir pool on the target for that directory, e.g. ``virsh pool-define-as images dir --target DIR``).
Volumes the executor creates are journaled at once, so an abort, a failure or recovery can remove
exactly those; a copied backing file only when nothing on the target uses it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from balancer.errors import LibvirtErrorInfo, MigrationError
from balancer.executor.facts import (
    ChainLink,
    CopyKind,
    DiskFacts,
    DomainFacts,
    PoolFacts,
    VolumeFacts,
    pool_for,
)
from balancer.executor.hypervisor import Hypervisor
from balancer.reasons import Reason


@dataclass(frozen=True)
class BackingStep:
    """One backing file the target needs; ``reuse`` when a same-sized file is already there."""

    path: str
    format: str
    pool: str
    length: int  # bytes of the file (what a copy streams)
    capacity: int
    reuse: bool


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
            if not b.reuse:
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


class _BackingRegistry:
    """Process-wide: one copier per (host, path), and which moves rely on a backing file right now."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self.users: Counter[tuple[str, str]] = Counter()
        self._digests: dict[tuple[str, str, int], str] = {}

    def lock(self, host: str, path: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((host, path), threading.Lock())

    def hold(self, host: str, path: str, delta: int) -> None:
        with self._guard:
            self.users[(host, path)] += delta

    # A backing file's sha256, remembered per (host, path, size): a base image is immutable once
    # written (Nova names them by content), so proving it equal on a target once is enough, instead
    # of streaming both copies through libvirt before every migration that reuses it. Forgotten
    # when we delete or write the file ourselves.
    def digest(self, host: str, path: str, length: int) -> str | None:
        with self._guard:
            return self._digests.get((host, path, length))

    def remember(self, host: str, path: str, length: int, digest: str) -> None:
        with self._guard:
            self._digests[(host, path, length)] = digest

    def forget(self, host: str, path: str) -> None:
        with self._guard:
            for key in [k for k in self._digests if k[:2] == (host, path)]:
                del self._digests[key]


REGISTRY = _BackingRegistry()


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


def provision(
    plan: StoragePlan,
    src: Hypervisor,
    dst: Hypervisor,
    verify: str,
    on_created: Callable[[str], None],
    on_bytes: Callable[[int], None] = lambda _n: None,
) -> Provisioned:
    """Make the target ready for ``plan`` (falling back to full when a backing file cannot be provided)."""
    done = Provisioned(plan.copy)
    disks = plan.disks
    if plan.copy == "incremental":
        try:
            for step in reversed(plan.backing):  # deepest first
                _ensure_backing(step, src, dst, verify, on_created, on_bytes, done)
        except ProvisionError as exc:
            done.notes.append(f"backing file not provided ({exc.message}); copying whole disks")
            done.copy = "full"
            disks = tuple(_as_full(d) for d in disks)
    for d in disks:
        _create_disk(d, dst, on_created, done)
    return done


def _as_full(d: DiskStep) -> DiskStep:
    return DiskStep(d.target, d.path, d.pool, d.capacity, "qcow2", None, d.capacity)


def _ensure_backing(
    step: BackingStep,
    src: Hypervisor,
    dst: Hypervisor,
    verify: str,
    on_created: Callable[[str], None],
    on_bytes: Callable[[int], None],
    done: Provisioned,
) -> None:
    with REGISTRY.lock(dst.name, step.path):
        try:
            there = dst.volume(step.path)
            if there is not None:
                if not _same(step, src, dst, there, verify):
                    raise ProvisionError(
                        Reason.BACKING_UNAVAILABLE, f"target's {step.path} differs from the source's"
                    )
                done.notes.append(f"reused {step.path} on {dst.name}")
                return
            name = os.path.basename(step.path)
            REGISTRY.forget(dst.name, step.path)
            dst.create_volume(step.pool, name, step.length, "raw", None)
            on_created(step.path)
            done.created.append(step.path)
            done.copied_backing.append(step.path)
            digest = hashlib.sha256()
            sent = dst.write_volume(
                step.path, _tap(src.read_volume(step.path, step.length), digest, on_bytes), step.length
            )
            done.backing_bytes += sent
            REGISTRY.remember(src.name, step.path, step.length, digest.hexdigest())
            copied = dst.volume(step.path)
            if sent != step.length or copied is None or copied.physical != step.length:
                raise ProvisionError(Reason.BACKING_UNAVAILABLE, f"copy of {step.path} has the wrong size")
            if verify == "sha256" and _sha256(dst, step.path, step.length) != digest.hexdigest():
                raise ProvisionError(
                    Reason.BACKING_UNAVAILABLE, f"copy of {step.path} does not match the source"
                )
            done.notes.append(
                f"copied {step.path} to {dst.name}: {sent} bytes, sha256 {digest.hexdigest()[:16]}"
            )
        except MigrationError as exc:
            raise ProvisionError(Reason.BACKING_UNAVAILABLE, str(exc), exc.info) from exc
        except ProvisionError:
            if step.path in done.copied_backing:  # our own partial copy: nothing else can use it yet
                _delete_quietly(dst, step.path)
                done.created.remove(step.path)
                done.copied_backing.remove(step.path)
            raise


def _same(step: BackingStep, src: Hypervisor, dst: Hypervisor, there: VolumeFacts, verify: str) -> bool:
    if (there.capacity, there.physical) != (step.capacity, step.length):
        return False
    return verify != "sha256" or _sha256(src, step.path, step.length) == _sha256(dst, step.path, step.length)


def _sha256(hv: Hypervisor, path: str, length: int) -> str:
    known = REGISTRY.digest(hv.name, path, length)
    if known is not None:
        return known
    digest = hashlib.sha256()
    for chunk in hv.read_volume(path, length):
        digest.update(chunk)
    REGISTRY.remember(hv.name, path, length, digest.hexdigest())
    return digest.hexdigest()


def _tap(chunks: Iterable[bytes], digest: hashlib._Hash, on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        on_bytes(len(chunk))
        yield chunk


def _create_disk(d: DiskStep, dst: Hypervisor, on_created: Callable[[str], None], done: Provisioned) -> None:
    try:
        vol = dst.create_volume(d.pool, os.path.basename(d.path), d.capacity, d.format, d.backing)
        on_created(d.path)
        done.created.append(d.path)
        if d.backing is not None:
            _verify_chain(vol, d, dst)
    except MigrationError as exc:
        raise ProvisionError(Reason.PROVISION_FAILED, str(exc), exc.info) from exc


def _verify_chain(vol: VolumeFacts, d: DiskStep, dst: Hypervisor) -> None:
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


def _delete_quietly(hv: Hypervisor, path: str) -> str | None:
    REGISTRY.forget(hv.name, path)
    try:
        hv.delete_volume(path)
        return None
    except MigrationError as exc:
        return f"{path}: {exc}"


def remove_created(
    created: Iterable[str], copied_backing: Iterable[str], dst: Hypervisor, own_hold: bool = False
) -> list[str]:
    """Roll back the target: our pre-created disks, copied backing files only if unused; returns problems."""
    problems: list[str] = []
    backing = set(copied_backing)
    try:
        in_use = dst.paths_in_use()
    except MigrationError as exc:
        return [f"cannot list domains on {dst.name}: {exc}"]
    for path in reversed(list(created)):  # overlays were created after their backing files
        if path in in_use:
            problems.append(f"{path} is used by a domain on {dst.name}; kept")
            continue
        held = REGISTRY.users[(dst.name, path)] > int(own_hold)
        if path in backing and (held or _backs_something(dst, path)):
            problems.append(f"{path} backs other volumes on {dst.name}; kept")
            continue
        if (err := _delete_quietly(dst, path)) is not None:
            problems.append(err)
    return problems


def _backs_something(hv: Hypervisor, path: str) -> bool:
    try:
        return bool(hv.volumes_backed_by(path))
    except MigrationError:
        return True  # when in doubt, keep it


def remove_source_disks(disk_paths: Iterable[str], src: Hypervisor) -> tuple[list[str], list[str]]:
    """After a verified success: delete the VM's own top images on the source (never a backing file)."""
    removed: list[str] = []
    problems: list[str] = []
    try:
        in_use = src.paths_in_use()
    except MigrationError as exc:
        return [], [f"cannot list domains on {src.name}: {exc}"]
    for path in disk_paths:
        if path in in_use or _backs_something(src, path):
            problems.append(f"{path} is still used on {src.name}; kept")
            continue
        try:
            if src.volume(path) is None:
                continue
        except MigrationError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if (err := _delete_quietly(src, path)) is None:
            removed.append(path)
        else:
            problems.append(err)
    return removed, problems
