"""Removing what moves created, returned as a value: what was removed, what was kept and why, problems.

* ``remove_move_volumes``: the volumes one move created on a target (newest first), except those a
  domain uses, that back another volume, that a running move relies on, or that the ledger no
  longer lists as that move's (nothing is deleted on a guess: a volume is removed only while the
  ledger says the move made it). With ``hand_over`` (the move succeeded) a volume the VM now runs
  on stops being the move's.
* ``remove_source_disks``: after a verified success, the VM's own top images on the source.
* ``sweep_leftovers``: provisional volumes on a host whose moves are over (a kill -9 mid-copy, a
  cleanup that could not reach the host): found through the ledger and removed the same way.

Callers never parse error strings: they read ``Cleanup.removed``/``kept``/``problems``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from balancer.errors import MigrationError
from balancer.executor.artifacts import BackingRegistry
from balancer.executor.hypervisor import StorageHost


@dataclass(frozen=True)
class Kept:
    path: str
    why: str


@dataclass(frozen=True)
class Cleanup:
    """What one cleanup on ``host`` did. ``problems``: what it could not find out or do."""

    host: str
    removed: tuple[str, ...] = ()
    kept: tuple[Kept, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """Nothing of what was asked for is left behind unexplained."""
        return not self.problems

    def describe(self) -> str:
        """One line for the journal and the log, "" when there was nothing to do."""
        parts = []
        if self.removed:
            parts.append(f"removed on {self.host}: {', '.join(self.removed)}")
        if self.kept:
            parts.append(f"kept on {self.host}: " + ", ".join(f"{k.path} ({k.why})" for k in self.kept))
        parts += [f"cleanup on {self.host}: {p}" for p in self.problems]
        return "; ".join(parts)


def remove_move_volumes(
    paths: Iterable[str],
    hv: StorageHost,
    registry: BackingRegistry,
    record_id: str,
    *,
    hand_over: bool = False,
    own_holds: int = 0,
) -> Cleanup:
    """Remove the volumes move ``record_id`` created on ``hv``, as described in the module docstring.

    ``own_holds``: how many of the registry's holds on each backing file are the caller's own.
    """
    ordered = list(dict.fromkeys(reversed(list(paths))))  # overlays were created after their bases
    if not ordered:
        return Cleanup(hv.name)
    try:
        in_use = hv.paths_in_use()
    except MigrationError as exc:
        return Cleanup(hv.name, problems=(f"cannot list domains: {exc}",))
    removed: list[str] = []
    kept: list[Kept] = []
    problems: list[str] = []
    for path in ordered:
        with registry.lock(hv.name, path):
            fate = _remove_one(path, hv, registry, record_id, hand_over, own_holds, in_use)
        if isinstance(fate, Kept):
            kept.append(fate)
        elif fate == _REMOVED:
            removed.append(path)
        elif fate:
            problems.append(fate)
    return Cleanup(hv.name, tuple(removed), tuple(kept), tuple(problems))


_REMOVED = "removed"


def _remove_one(
    path: str,
    hv: StorageHost,
    registry: BackingRegistry,
    record_id: str,
    hand_over: bool,
    own_holds: int,
    in_use: set[str],
) -> Kept | str:
    """``_REMOVED``, a Kept, a problem, or "" when there was nothing (left) of this move's to remove."""
    row = registry.row(hv.name, path)
    if row is None or row.record_id != record_id:
        return ""  # never created, already removed or handed over, or another move's now
    try:
        vol = hv.volume(path)
    except MigrationError as exc:
        return f"{path}: {exc}"
    if vol is None:
        registry.release(hv.name, path, record_id)
        return ""
    if path in in_use:
        if row.kind == "backing" and row.state == "provisional":
            return f"{path} is used by a domain but was never proven complete; check it by hand"
        if not hand_over:
            return Kept(path, "used by a domain")
        if row.kind == "disk":
            registry.release(hv.name, path, record_id)  # the VM's disk now
        return ""  # a verified base the VM runs on stays listed: that row is its completion marker
    if registry.held(hv.name, path) > own_holds:
        return Kept(path, "another move relies on it")
    if row.kind == "backing" and _backs_something(hv, path):
        return Kept(path, "backs other volumes")
    registry.forget(hv.name, path)
    try:
        hv.delete_volume(path)
    except MigrationError as exc:
        return f"{path}: {exc}"
    registry.release(hv.name, path, record_id)
    return _REMOVED


def sweep_leftovers(hv: StorageHost, registry: BackingRegistry) -> Cleanup:
    """Remove the provisional volumes on ``hv`` whose moves are over (see ``BackingRegistry.is_leftover``)."""
    out = Cleanup(hv.name)
    for row in registry.rows(host=hv.name, state="provisional"):
        if registry.is_leftover(row):
            out = merge(out, remove_move_volumes([row.path], hv, registry, row.record_id, hand_over=True))
    return out


def remove_source_disks(disk_paths: Iterable[str], src: StorageHost) -> Cleanup:
    """After a verified success: delete the VM's own top images on the source (never a backing file)."""
    removed: list[str] = []
    kept: list[Kept] = []
    problems: list[str] = []
    try:
        in_use = src.paths_in_use()
    except MigrationError as exc:
        return Cleanup(src.name, problems=(f"cannot list domains: {exc}",))
    for path in disk_paths:
        if path in in_use or _backs_something(src, path):
            kept.append(Kept(path, "still used"))
            continue
        try:
            if src.volume(path) is None:
                continue
            src.delete_volume(path)
        except MigrationError as exc:
            problems.append(f"{path}: {exc}")
            continue
        removed.append(path)
    return Cleanup(src.name, tuple(removed), tuple(kept), tuple(problems))


def merge(a: Cleanup, b: Cleanup) -> Cleanup:
    assert a.host == b.host, (a.host, b.host)
    return Cleanup(a.host, a.removed + b.removed, a.kept + b.kept, a.problems + b.problems)


def _backs_something(hv: StorageHost, path: str) -> bool:
    try:
        return bool(hv.volumes_backed_by(path))
    except MigrationError:
        return True  # when in doubt, keep it
