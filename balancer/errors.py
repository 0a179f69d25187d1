"""Exceptions raised by balancer.

::

    BalancerError
     ├── ConfigError        config.yaml (or API/CLI input) is invalid; carries one line per problem
     ├── SnapshotError      a snapshot file cannot be read or does not match the schema
     ├── CollectError       a host could not be polled (kept per host in the Snapshot, not raised per tick)
     ├── StoreError         the durable store failed or has an unexpected schema
     │    ├── NotFound      no drain, plan, move, migration, host or VM with that id (the API answers 404)
     │    ├── Conflict      the request contradicts the stored state, e.g. a rejected plan approved (409)
     │    │    ├── RecordChanged  a journal transition found the record no longer in the state it expected
     │    │    └── AmbiguousId    an id prefix matches several records (their ids are named)
     │    └── LeaseLost     a leader-only write refused: the writer no longer holds the lease at its epoch
     ├── LabError           the local lab could not be brought up / used (balancer.lab.errors: the lab
     │                      defines it with its own subclasses; the product never raises it)
     ├── MigrationError     libvirt refused or failed a migration step; code, domain and message are
     │                      libvirt's own (``virErrorNumber``, ``virErrorDomain``, text)
     └── NotReady           the service cannot answer yet: no collection has completed (the API answers 503)

Only ``executor/libvirt_hypervisor.py`` and ``metrics/libvirt_source.py`` catch ``libvirt.libvirtError``;
they map it to one of these with ``raise ... from exc`` so the original stays attached.

What a client may act on carries an :class:`ErrorCode`: a stable snake_case code that the API answers
as ``{"code": ..., "detail": ...}`` (balancer/api/errors.py maps each to its HTTP status) and the CLI
switches on; the wording of ``detail`` is for people and may change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable codes of the errors a client sees: never renamed, only added to. balancer/api/errors.py
    gives each its HTTP status and meaning (the API's OpenAPI document lists them)."""

    TOKEN_REQUIRED = "token_required"
    TOKEN_INVALID = "token_invalid"
    WRITE_TOKEN_REQUIRED = "write_token_required"
    NOT_FOUND = "not_found"
    HOST_NOT_FOUND = "host_not_found"
    VM_NOT_FOUND = "vm_not_found"
    DRAIN_NOT_FOUND = "drain_not_found"
    NOT_DRAINED = "not_drained"
    PLAN_NOT_FOUND = "plan_not_found"
    MOVE_NOT_FOUND = "move_not_found"
    MIGRATION_NOT_FOUND = "migration_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PLAN_CLOSED = "plan_closed"
    PLAN_EXPIRED = "plan_expired"
    MOVE_CLOSED = "move_closed"
    DRAIN_CLOSED = "drain_closed"
    MIGRATION_FINISHED = "migration_finished"
    RECORD_CHANGED = "record_changed"
    VM_BUSY = "vm_busy"
    ALREADY_THERE = "already_there"
    NOT_LEADER = "not_leader"
    AMBIGUOUS_ID = "ambiguous_id"
    BODY_TOO_LARGE = "body_too_large"
    INVALID_INPUT = "invalid_input"
    INTERNAL_ERROR = "internal_error"
    STORE_UNAVAILABLE = "store_unavailable"
    NO_SNAPSHOT = "no_snapshot"


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
    """The durable store failed (``code``: what a client is told)."""

    code: ErrorCode = ErrorCode.STORE_UNAVAILABLE

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(StoreError):
    """There is no drain, plan, move, migration, host or VM with the id or name asked for; ``code``
    says which kind."""

    def __init__(self, message: str, code: ErrorCode) -> None:
        super().__init__(message, code)


class Conflict(StoreError):
    """The request contradicts the stored state (approving a rejected plan, closing a closed drain);
    ``code`` says how."""

    def __init__(self, message: str, code: ErrorCode) -> None:
        super().__init__(message, code)


class RecordChanged(Conflict):
    """A compare-and-set on a journal record failed: someone else (an undrain, a newer leader) moved it.

    ``current`` is the record as stored now, or None when it does not exist.
    """

    def __init__(self, message: str, current: object | None = None) -> None:
        super().__init__(message, ErrorCode.RECORD_CHANGED)
        self.current = current


class AmbiguousId(Conflict):
    """An id prefix matches several records: ``candidates`` are (some of) their ids, ``more`` says
    whether there are others. Nothing is done on a guess; the caller asks again with more characters."""

    def __init__(self, kind: str, prefix: str, candidates: list[str], more: bool = False) -> None:
        self.candidates = list(candidates)
        listed = ", ".join(self.candidates) + (", ..." if more else "")
        super().__init__(
            f"{kind} id prefix {prefix!r} matches {'more than ' if more else ''}{len(self.candidates)} "
            f"{kind}s: {listed}; give more characters",
            ErrorCode.AMBIGUOUS_ID,
        )


class LeaseLost(StoreError):
    """A leader-only action refused: this instance no longer holds the leader lease at its epoch.

    Raised by fenced store writes (the store checks the lease row in the same transaction) and by the
    executor's fence before any action on a host. Whoever gets it must stop acting at once: the next
    leader adopts what is left from the journal.
    """

    code = ErrorCode.NOT_LEADER


class NotReady(BalancerError):
    """The service cannot answer yet: what was asked needs a completed collection (a snapshot)."""

    code = ErrorCode.NO_SNAPSHOT


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
