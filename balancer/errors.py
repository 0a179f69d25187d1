"""Exceptions raised by balancer.

::

    BalancerError
     ├── ConfigError        config.yaml (or API/CLI input) is invalid; carries one line per problem
     ├── SnapshotError      a snapshot file cannot be read or does not match the schema
     ├── CollectError       a host could not be polled (kept per host in the Snapshot, not raised per tick)
     ├── StoreError         the durable store failed or has an unexpected schema
     │    ├── NotFound      no drain, plan, move or migration with that id (the API answers 404)
     │    ├── Conflict      the request contradicts the stored state, e.g. a rejected plan approved (409)
     │    │    └── RecordChanged  a journal transition found the record no longer in the state it expected
     │    └── LeaseLost     a leader-only write refused: the writer no longer holds the lease at its epoch
     ├── LabError           the local lab could not be brought up / used (balancer.lab.errors: the lab
     │                      defines it with its own subclasses; the product never raises it)
     └── MigrationError     libvirt refused or failed a migration step; code, domain and message are
                            libvirt's own (``virErrorNumber``, ``virErrorDomain``, text)

Only ``executor/hypervisor.py`` and ``metrics/libvirt_source.py`` catch ``libvirt.libvirtError``;
they map it to one of these with ``raise ... from exc`` so the original stays attached.
"""

from __future__ import annotations

from dataclasses import dataclass


class BalancerError(Exception):
    """Base of every error balancer raises on purpose."""


class ConfigError(BalancerError):
    """Invalid configuration; ``problems`` has one human-readable line per error."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))

    def render(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class SnapshotError(BalancerError):
    """A snapshot file cannot be parsed."""


class CollectError(BalancerError):
    """A host could not be polled; ``kind`` is a stable code, one of KINDS."""

    KINDS = ("connect", "timeout", "libvirt", "internal")

    def __init__(self, host: str, kind: str, message: str, code: int | None = None) -> None:
        self.host = host
        self.kind = kind
        self.code = code
        self.message = message
        super().__init__(f"{host}: {kind}: {message}" + (f" (libvirt code {code})" if code else ""))


class StoreError(BalancerError):
    """The durable store failed."""


class NotFound(StoreError):
    """The store has no drain, plan, move or migration with the id asked for."""


class Conflict(StoreError):
    """The request contradicts the stored state (approving a rejected plan, closing a closed drain)."""


class RecordChanged(Conflict):
    """A compare-and-set on a journal record failed: someone else (an undrain, a newer leader) moved it.

    ``current`` is the record as stored now, or None when it does not exist.
    """

    def __init__(self, message: str, current: object | None = None) -> None:
        super().__init__(message)
        self.current = current


class LeaseLost(StoreError):
    """A leader-only action refused: this instance no longer holds the leader lease at its epoch.

    Raised by fenced store writes (the store checks the lease row in the same transaction) and by the
    executor's fence before any action on a host. Whoever gets it must stop acting at once: the next
    leader adopts what is left from the journal.
    """


@dataclass(frozen=True)
class LibvirtErrorInfo:
    """libvirt's own error triple, kept intact for the journal, the API and the logs."""

    code: int
    domain: int
    message: str

    def __str__(self) -> str:
        return f"{self.message} (libvirt code {self.code}, domain {self.domain})"


class MigrationError(BalancerError):
    """A libvirt call in the executor failed."""

    def __init__(self, code: int, domain: int, message: str, operation: str = "", host: str = "") -> None:
        self.info = LibvirtErrorInfo(code=code, domain=domain, message=message)
        self.operation = operation
        self.host = host  # the libvirtd the failed call went to, so callers need not parse ``operation``
        prefix = f"{operation}: " if operation else ""
        super().__init__(f"{prefix}{self.info}")
