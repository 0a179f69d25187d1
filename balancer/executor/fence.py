"""The executor's side of fenced leadership: no action on a host unless this process still leads.

The store fences every journal write (store/lease.py); libvirt cannot check a fencing token, so the
executor checks its own term right before every call that changes a host: starting a migration,
aborting or tuning one, creating, writing or deleting a volume (each chunk of a backing-file copy too).
``Term.valid()`` reads the monotonic clock against the lease's local deadline, which ends before the
store lets another instance take the lease over (service/lease.py), so a process paused by SIGSTOP or
cut off from the store finds itself invalid the moment it resumes and acts no more. What remains is
the instant between the check and the call leaving the process: far below the lease's safety margin.
Reads (look-ups, job stats, pool sizes) are not fenced: they change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from balancer.errors import LeaseLost
from balancer.executor.convergence import JobSample
from balancer.executor.facts import (
    ChainLink,
    DomainFacts,
    MigrationRequest,
    NodeFacts,
    PoolFacts,
    VolumeFacts,
)
from balancer.executor.hypervisor import Hypervisor, HypervisorFactory


class Term(Protocol):
    """A leadership term as the executor sees it."""

    @property
    def epoch(self) -> int: ...

    def valid(self) -> bool:
        """True while this process may still act as the leader of ``epoch`` (monotonic clock)."""
        ...


class FencedHypervisor:
    """A Hypervisor that refuses every host-changing call once ``term`` is no longer valid."""

    def __init__(self, inner: Hypervisor, term: Term) -> None:
        self.inner = inner
        self.term = term
        self.name = inner.name

    def _guard(self, action: str) -> None:
        if not self.term.valid():
            raise LeaseLost(
                f"not acting on {self.name} ({action}): this process no longer leads epoch "
                f"{self.term.epoch}; the next leader adopts the move from the journal"
            )

    # -- reads: delegated as they are -----------------------------------------------------
    def node(self) -> NodeFacts:
        return self.inner.node()

    def domain(self, name_or_uuid: str) -> DomainFacts | None:
        return self.inner.domain(name_or_uuid)

    def cpu_compatible(self, dom: DomainFacts) -> bool:
        return self.inner.cpu_compatible(dom)

    def pools(self) -> list[PoolFacts]:
        return self.inner.pools()

    def volume(self, path: str) -> VolumeFacts | None:
        return self.inner.volume(path)

    def volumes_backed_by(self, path: str) -> list[str]:
        return self.inner.volumes_backed_by(path)

    def paths_in_use(self) -> set[str]:
        return self.inner.paths_in_use()

    def read_volume(self, path: str, length: int) -> Iterator[bytes]:
        return self.inner.read_volume(path, length)

    def job_stats(self, dom: str, now: float) -> JobSample | None:
        return self.inner.job_stats(dom, now)

    def completed_stats(self, dom: str) -> dict[str, int]:
        return self.inner.completed_stats(dom)

    def close(self) -> None:
        self.inner.close()

    # -- actions: only while the term is valid ----------------------------------------------
    def create_volume(
        self, pool: str, name: str, capacity: int, fmt: str, backing: ChainLink | None
    ) -> VolumeFacts:
        self._guard(f"create volume {name} in pool {pool}")
        return self.inner.create_volume(pool, name, capacity, fmt, backing)

    def delete_volume(self, path: str) -> None:
        self._guard(f"delete volume {path}")
        self.inner.delete_volume(path)

    def write_volume(self, path: str, chunks: Iterable[bytes], length: int) -> int:
        self._guard(f"write volume {path}")

        def guarded() -> Iterator[bytes]:
            for chunk in chunks:
                self._guard(f"write volume {path}")  # a copy stops mid-stream once the term ends
                yield chunk

        return self.inner.write_volume(path, guarded(), length)

    def migrate(self, dom: str, request: MigrationRequest) -> None:
        self._guard(f"migrate {dom} to {request.dest_uri}")
        self.inner.migrate(dom, request)

    def abort_job(self, dom: str) -> None:
        self._guard(f"abort the job of {dom}")
        self.inner.abort_job(dom)

    def set_max_downtime(self, dom: str, ms: int) -> None:
        self._guard(f"set max downtime of {dom}")
        self.inner.set_max_downtime(dom, ms)

    def start_post_copy(self, dom: str) -> None:
        self._guard(f"start post-copy of {dom}")
        self.inner.start_post_copy(dom)


def fenced(factory: HypervisorFactory, term: Term) -> HypervisorFactory:
    """``factory``'s hypervisors, each guarded by ``term``."""
    cache: dict[str, FencedHypervisor] = {}

    def get(name: str) -> Hypervisor:
        hv = cache.get(name)
        if hv is None:
            hv = cache[name] = FencedHypervisor(factory(name), term)
        return hv

    return get
