"""How a move ended, from the facts gathered about it: one pure function, ``classify``.

The facts are how far the journal got (``reached``), one look at both hosts (``Sighting``), and
what the migrate call and the poll loop saw (its libvirt error, an abort and why). The answer is
the journal's final state, the outcome, and what happens to what the move made:

* libvirt was never asked to migrate (``reached`` before ``migrating``): the move cannot have
  moved the VM, wherever the VM is now (another move may have taken it since): ``aborted``
  (interrupted or aborted) or ``failed`` (provisioning failed); its target volumes are removed.
* running on the target only → ``succeeded``; what the VM runs on is handed over to it, the rest
  of the move's target volumes are removed, and the source's disk images too.
* still on the source, running, target clean → ``failed`` (or ``aborted`` when we aborted it, or
  ``verify_failed`` when the call returned without error but the VM did not move); target removed.
* shut off or crashed on the source (its owner destroyed or shut it down), target clean →
  ``failed`` with ``source_stopped`` and libvirt's reason for the state; target removed.
* anything a human must decide → ``needs_attention``: a host that could not be asked, a job still
  running, a domain on both hosts or on neither, a source paused or shut off as "migrated". The
  move's target volumes are removed only when the target has no domain and the source still holds
  the VM (so they cannot be anyone's only copy); otherwise nothing is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from balancer.errors import LibvirtErrorInfo
from balancer.executor.events import OutcomeStatus
from balancer.executor.facts import DomainFacts
from balancer.model import MoveState
from balancer.reasons import Reason

S = MoveState
_BEFORE_MIGRATING = (S.QUEUED, S.PRECHECKING, S.COPYING_BACKING)
_STOPPED = ("shutoff", "crashed")


class Placement(StrEnum):
    TARGET_ONLY = "target_only"  # running on the target, absent from the source: migrated
    SOURCE_ONLY = "source_only"  # running on the source; the target has no domain (or is unreachable)
    SOURCE_STOPPED = "source_stopped"  # shut off or crashed on the source, no domain on the target
    MIGRATING = "migrating"  # the source still has a job: not final yet
    UNSETTLED = "unsettled"  # anything else: both, neither, paused, a host unreachable


@dataclass(frozen=True)
class Sighting:
    """One look at both hosts. ``*_error`` is set when that host could not be asked."""

    source: DomainFacts | None
    target: DomainFacts | None
    source_error: str = ""
    target_error: str = ""

    @property
    def placement(self) -> Placement:
        s, t = self.source, self.target
        if self.source_error == "" and s is None and t is not None and t.running and not self.target_error:
            return Placement.TARGET_ONLY
        if s is not None and s.job_active:
            return Placement.MIGRATING
        if s is not None and s.running and t is None:
            return Placement.SOURCE_ONLY
        if _stopped(s) and t is None and not self.target_error:
            return Placement.SOURCE_STOPPED
        return Placement.UNSETTLED

    def describe(self) -> str:
        def one(d: DomainFacts | None, err: str) -> str:
            if err:
                return f"unreachable ({err})"
            if d is None:
                return "absent"
            return (
                d.describe_state()
                + (", job running" if d.job_active else "")
                + ("" if d.persistent else ", transient")
            )

        return f"source: {one(self.source, self.source_error)}; target: {one(self.target, self.target_error)}"


def _stopped(d: DomainFacts | None) -> bool:
    """Stopped on the source by something other than a completed migration (its owner, a crash)."""
    return d is not None and d.state in _STOPPED and not d.job_active and d.state_reason != "migrated"


class TargetFate(StrEnum):
    HAND_OVER = "hand_over"  # succeeded: what the VM runs on is its own now; the rest is removed
    REMOVE = "remove"  # the VM is not on the target: what the move made there is removed
    KEEP = "keep"  # a human decides: nothing is touched


@dataclass(frozen=True)
class EndFacts:
    """Everything ``classify`` looks at. ``seen``: None when nobody looked (before migrating)."""

    reached: MoveState
    seen: Sighting | None = None
    call_error: LibvirtErrorInfo | None = None  # the migrate call's libvirt error
    abort: Reason | None = None  # we asked libvirt (or the move) to stop, and why
    abort_detail: str = ""
    problem: Reason | None = None  # before migrating: what stopped the move (provisioning)
    problem_detail: str = ""
    recovering: bool = False  # judged by recovery: nobody saw the call end


@dataclass(frozen=True)
class Ending:
    status: OutcomeStatus
    state: MoveState
    reason: Reason
    summary: str
    target: TargetFate
    clean_source: bool = False  # remove the VM's own disk images on the source (after a success)


def classify(f: EndFacts) -> Ending:
    """The final state of a move and what to do with its artifacts (see the module docstring)."""
    if f.reached in _BEFORE_MIGRATING:
        return _before_migrating(f)
    seen = f.seen
    if seen is None:
        return _attention(
            "libvirt was asked to migrate, and nobody looked at the hosts since", TargetFate.KEEP
        )
    s, t = seen.source, seen.target
    facts = seen.describe()
    if seen.source_error or seen.target_error:
        return _attention(f"a host could not be asked: {facts}", TargetFate.KEEP)
    if s is None and t is not None and t.running:
        reason = Reason.RECOVERED if f.recovering else Reason.SUCCEEDED
        return Ending(
            OutcomeStatus.SUCCEEDED, S.SUCCEEDED, reason, f"verified: {facts}", TargetFate.HAND_OVER, True
        )
    if s is not None and s.job_active:
        return _attention(f"the migration job is still running on the source: {facts}", TargetFate.KEEP)
    if t is not None:
        return _attention(f"the VM is defined on the target too: {facts}", TargetFate.KEEP)
    if s is None:
        return _attention(f"the VM is on neither host: {facts}", TargetFate.KEEP)
    if s.running:
        return _still_on_source(f, facts)
    if _stopped(s):
        return Ending(
            OutcomeStatus.FAILED,
            S.FAILED,
            Reason.SOURCE_STOPPED,
            f"the VM stopped on the source during the migration ({s.describe_state()}): {facts}",
            TargetFate.REMOVE,
        )
    # paused, pm-suspended, or shut off as "migrated" while the target has nothing
    fate = TargetFate.KEEP if s.state_reason == "migrated" else TargetFate.REMOVE
    return _attention(f"the VM is {s.describe_state()} on the source and absent from the target", fate)


def _before_migrating(f: EndFacts) -> Ending:
    if f.recovering:
        return Ending(
            OutcomeStatus.ABORTED,
            S.ABORTED,
            Reason.SHUTDOWN,
            f"interrupted in {f.reached.value}, before the migration started",
            TargetFate.REMOVE,
        )
    if f.problem is not None:
        return Ending(OutcomeStatus.FAILED, S.FAILED, f.problem, f.problem_detail, TargetFate.REMOVE)
    if f.abort is not None:
        return Ending(
            OutcomeStatus.ABORTED,
            S.ABORTED,
            f.abort,
            f.abort_detail or "aborted before migrating",
            TargetFate.REMOVE,
        )
    return Ending(
        OutcomeStatus.FAILED,
        S.FAILED,
        Reason.MIGRATION_FAILED,
        f"ended in {f.reached.value} without a cause",
        TargetFate.REMOVE,
    )


def _still_on_source(f: EndFacts, facts: str) -> Ending:
    if f.abort is not None:
        return Ending(
            OutcomeStatus.ABORTED,
            S.ABORTED,
            f.abort,
            _join(f.abort_detail or "aborted", facts),
            TargetFate.REMOVE,
        )
    if f.recovering:
        return Ending(OutcomeStatus.FAILED, S.FAILED, Reason.RECOVERED, facts, TargetFate.REMOVE)
    if f.call_error is not None:
        return Ending(
            OutcomeStatus.FAILED,
            S.FAILED,
            Reason.MIGRATION_FAILED,
            _join(f.call_error.message, facts),
            TargetFate.REMOVE,
        )
    return Ending(
        OutcomeStatus.FAILED,
        S.FAILED,
        Reason.VERIFY_FAILED,
        _join("the migrate call returned, but the VM did not move", facts),
        TargetFate.REMOVE,
    )


def _attention(summary: str, fate: TargetFate) -> Ending:
    return Ending(OutcomeStatus.NEEDS_ATTENTION, S.NEEDS_ATTENTION, Reason.NEEDS_ATTENTION, summary, fate)


def _join(head: str, tail: str) -> str:
    return f"{head}; {tail}" if head else tail
