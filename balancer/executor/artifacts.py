"""What moves create on target hosts, and who may rely on it: the injected ``BackingRegistry``.

Durable part, the ledger (``VolumeLedger``, implemented by ``balancer.store.Store``): one
``TargetVolume`` row per volume a move creates on a target, written *before* the volume is
created (``provisional``). A backing file becomes ``verified`` only once its content was proven
complete and equal to the source's; that row, bound to the file's length, capacity and
modification time, is the completion marker. So a copy interrupted at any point (kill -9, a host
lost) is never taken for a complete one: it has no verified row, and its provisional row names
the move that made it, which is how recovery and the next move's pre-check find it as a leftover.
libvirt's storage API has no rename (no "copy to a temporary name, then rename"), and a marker
file beside the volume would need two non-atomic calls and show up in the operator's pools;
the store writes one row in one transaction (about a millisecond on SQLite) and, under the
leader's fencing, only the leader can write it.

In-process part: one lock per (host, path), so one copier works on a file at a time; how many
running moves rely on a backing file (never removed under them); sha256 digests already computed,
per (host, path, length, mtime), so a file is read once per process rather than before every move.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from balancer.errors import NotFound
from balancer.executor.facts import VolumeFacts
from balancer.model import TargetVolume

Kind = Literal["backing", "disk"]


@runtime_checkable
class VolumeLedger(Protocol):
    """The part of the store that keeps target volumes (``balancer.store.Store`` implements it)."""

    def save_target_volume(self, vol: TargetVolume) -> None: ...
    def target_volume(self, host: str, path: str) -> TargetVolume | None: ...
    def target_volumes(
        self, *, host: str | None = None, record_id: str | None = None, state: str | None = None
    ) -> tuple[TargetVolume, ...]: ...
    def forget_target_volume(self, host: str, path: str, record_id: str) -> bool: ...


class MemoryLedger:
    """A VolumeLedger in memory: for journal stores without one (it does not survive a restart)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], TargetVolume] = {}
        self._lock = threading.Lock()

    def save_target_volume(self, vol: TargetVolume) -> None:
        with self._lock:
            self._rows[(vol.host, vol.path)] = vol

    def target_volume(self, host: str, path: str) -> TargetVolume | None:
        with self._lock:
            return self._rows.get((host, path))

    def target_volumes(
        self, *, host: str | None = None, record_id: str | None = None, state: str | None = None
    ) -> tuple[TargetVolume, ...]:
        with self._lock:
            rows = sorted(self._rows.values(), key=lambda v: (v.host, v.path))
        return tuple(
            v
            for v in rows
            if (host is None or v.host == host)
            and (record_id is None or v.record_id == record_id)
            and (state is None or v.state == state)
        )

    def forget_target_volume(self, host: str, path: str, record_id: str) -> bool:
        with self._lock:
            row = self._rows.get((host, path))
            if row is None or row.record_id != record_id:
                return False
            del self._rows[(host, path)]
            return True


class BackingRegistry:
    """Shared by every move and recovery of one executor; pass the same one to Runner and recover.

    ``finished(record_id)`` says whether that move's journal record is final (or gone): only then
    is a provisional volume it left a leftover that someone else may remove.
    """

    def __init__(
        self,
        ledger: VolumeLedger | None = None,
        finished: Callable[[str], bool] = lambda _id: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger: VolumeLedger = ledger if ledger is not None else MemoryLedger()
        self.finished = finished
        self.clock = clock
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.RLock] = {}
        self._users: Counter[tuple[str, str]] = Counter()
        self._digests: dict[tuple[str, str, int, str], str] = {}

    # -- in-process coordination ---------------------------------------------------------
    def lock(self, host: str, path: str) -> threading.RLock:
        """Held while a volume is judged, copied or removed (re-entrant: a copier removes leftovers)."""
        with self._guard:
            return self._locks.setdefault((host, path), threading.RLock())

    def hold(self, host: str, path: str, delta: int) -> None:
        """A running move starts (+1) or stops (-1) relying on a backing file on ``host``."""
        with self._guard:
            self._users[(host, path)] += delta

    def held(self, host: str, path: str) -> int:
        with self._guard:
            return self._users[(host, path)]

    # A file's sha256 is remembered per (host, path, length, mtime): a base image is immutable once
    # written (Nova names them by content), and a file written since has another mtime.
    def digest(self, host: str, vol: VolumeFacts) -> str | None:
        with self._guard:
            return self._digests.get((host, vol.path, vol.physical, vol.mtime))

    def remember(self, host: str, vol: VolumeFacts, digest: str) -> None:
        with self._guard:
            self._digests[(host, vol.path, vol.physical, vol.mtime)] = digest

    def forget(self, host: str, path: str) -> None:
        with self._guard:
            for key in [k for k in self._digests if k[:2] == (host, path)]:
                del self._digests[key]

    # -- the durable ledger ----------------------------------------------------------------
    def intend(self, host: str, path: str, kind: Kind, record_id: str) -> None:
        """Before creating a volume: it is this move's, and unproven."""
        self.ledger.save_target_volume(TargetVolume(host, path, kind, "provisional", record_id, self.clock()))

    def verified(self, host: str, vol: VolumeFacts, record_id: str, sha256: str) -> TargetVolume:
        """The backing file ``vol`` on ``host`` is complete and equal to the source's (the marker)."""
        row = TargetVolume(
            host,
            vol.path,
            "backing",
            "verified",
            record_id,
            self.clock(),
            sha256,
            vol.physical,
            vol.capacity,
            vol.mtime,
        )
        self.ledger.save_target_volume(row)
        return row

    def row(self, host: str, path: str) -> TargetVolume | None:
        return self.ledger.target_volume(host, path)

    def rows(
        self, *, host: str | None = None, record_id: str | None = None, state: str | None = None
    ) -> tuple[TargetVolume, ...]:
        return self.ledger.target_volumes(host=host, record_id=record_id, state=state)

    def release(self, host: str, path: str, record_id: str) -> bool:
        """The volume is gone or handed over (a VM runs on it): it is no longer this move's."""
        return self.ledger.forget_target_volume(host, path, record_id)

    def is_leftover(self, row: TargetVolume) -> bool:
        """A provisional volume whose move is over: nobody will finish or prove it."""
        return row.state == "provisional" and self.finished(row.record_id)


def registry_for(store: object) -> BackingRegistry:
    """The registry of an executor journaling into ``store``: its ledger when it has one."""
    ledger = store if isinstance(store, VolumeLedger) else None
    get_record = getattr(store, "get_record", None)

    def finished(record_id: str) -> bool:
        if get_record is None:
            return False
        try:
            return bool(get_record(record_id).state.final)
        except NotFound:
            return True  # no such move (any more): nobody owns what it made

    return BackingRegistry(ledger, finished)
