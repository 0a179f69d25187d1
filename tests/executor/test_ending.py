"""ending.classify: how a move ended, from the facts gathered; named cases and properties over all facts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balancer.errors import LibvirtErrorInfo
from balancer.executor.ending import EndFacts, Placement, Sighting, TargetFate, classify
from balancer.executor.events import OutcomeStatus
from balancer.executor.facts import DomainFacts
from balancer.model import MoveState
from balancer.reasons import Reason

S = MoveState
UUID = "00000000-0000-4000-8000-000000000001"
NOT_RUNNING = LibvirtErrorInfo(9, 20, "operation failed: domain is not running")


def dom(state: str = "running", why: str = "", job: bool = False) -> DomainFacts:
    return DomainFacts("vm", UUID, state, True, 1 << 30, job_active=job, state_reason=why)


def end(seen: Sighting, reached: MoveState = S.VERIFYING, **kw: object):  # type: ignore[no-untyped-def]
    return classify(EndFacts(reached, seen, **kw))  # type: ignore[arg-type]


def test_running_on_the_target_only_is_a_success_that_hands_the_target_over() -> None:
    e = end(Sighting(None, dom()))
    assert (e.status, e.state, e.reason, e.target, e.clean_source) == (
        OutcomeStatus.SUCCEEDED,
        S.SUCCEEDED,
        Reason.SUCCEEDED,
        TargetFate.HAND_OVER,
        True,
    )
    assert end(Sighting(None, dom()), recovering=True).reason == Reason.RECOVERED


@pytest.mark.parametrize(
    ("state", "why"), [("shutoff", "destroyed"), ("shutoff", "shutdown"), ("crashed", "")]
)
def test_owner_stopping_the_source_mid_migration_is_a_failure_with_libvirts_reason(
    state: str, why: str
) -> None:
    e = end(Sighting(dom(state, why), None), call_error=NOT_RUNNING)
    assert (e.status, e.state, e.reason, e.target) == (
        OutcomeStatus.FAILED,
        S.FAILED,
        Reason.SOURCE_STOPPED,
        TargetFate.REMOVE,
    )
    assert state in e.summary and why in e.summary
    assert Sighting(dom(state, why), None).placement == Placement.SOURCE_STOPPED  # settle stops waiting


def test_still_running_on_the_source() -> None:
    seen = Sighting(dom(), None)
    assert end(seen, call_error=NOT_RUNNING).reason == Reason.MIGRATION_FAILED
    assert end(seen).reason == Reason.VERIFY_FAILED  # the call returned, yet nothing moved
    aborted = end(seen, abort=Reason.NO_PROGRESS, abort_detail="no bytes for 60 s")
    assert (aborted.state, aborted.reason) == (S.ABORTED, Reason.NO_PROGRESS)
    assert end(seen, recovering=True).reason == Reason.RECOVERED
    assert {end(seen, call_error=NOT_RUNNING).target, aborted.target} == {TargetFate.REMOVE}


def test_a_move_libvirt_was_never_asked_to_make_never_succeeded_wherever_the_vm_is() -> None:
    # killed while copying the base; a later move then took the VM to the target (issue 13, case 2)
    e = end(Sighting(None, dom()), reached=S.COPYING_BACKING, recovering=True)
    assert (e.state, e.reason, e.target, e.clean_source) == (
        S.ABORTED,
        Reason.SHUTDOWN,
        TargetFate.REMOVE,
        False,
    )
    failed = classify(EndFacts(S.COPYING_BACKING, problem=Reason.BACKING_UNAVAILABLE, problem_detail="x"))
    assert (failed.state, failed.reason, failed.target) == (
        S.FAILED,
        Reason.BACKING_UNAVAILABLE,
        TargetFate.REMOVE,
    )
    stopped = classify(EndFacts(S.COPYING_BACKING, abort=Reason.SHUTDOWN))
    assert (stopped.state, stopped.reason) == (S.ABORTED, Reason.SHUTDOWN)


@pytest.mark.parametrize(
    ("seen", "fate", "words"),
    [
        (Sighting(dom(), dom()), TargetFate.KEEP, "defined on the target too"),
        (Sighting(None, None), TargetFate.KEEP, "neither host"),
        (Sighting(dom(job=True), None), TargetFate.KEEP, "still running"),
        (Sighting(dom(), None, target_error="connection reset"), TargetFate.KEEP, "could not be asked"),
        (Sighting(None, dom(), source_error="connection reset"), TargetFate.KEEP, "could not be asked"),
        (Sighting(None, dom("paused", "postcopy failed")), TargetFate.KEEP, "defined on the target"),
        (Sighting(dom("shutoff", "migrated"), None), TargetFate.KEEP, "shutoff (migrated)"),
        # paused on the source, nothing on the target: the source holds the VM and its disks, so the
        # target's half copy is nobody's; whether to resume the VM is for a human
        (Sighting(dom("paused", "migration"), None), TargetFate.REMOVE, "paused (migration)"),
    ],
)
def test_what_a_human_must_decide(seen: Sighting, fate: TargetFate, words: str) -> None:
    e = end(seen)
    assert (e.status, e.state, e.reason, e.target) == (
        OutcomeStatus.NEEDS_ATTENTION,
        S.NEEDS_ATTENTION,
        Reason.NEEDS_ATTENTION,
        fate,
    )
    assert words in e.summary


# -- properties over every combination of facts -------------------------------------------------
domains = st.one_of(
    st.none(),
    st.builds(
        dom,
        st.sampled_from(["running", "paused", "shutoff", "crashed", "pmsuspended"]),
        st.sampled_from(["", "unknown", "destroyed", "shutdown", "migrated", "crashed", "migration"]),
        st.booleans(),
    ),
)
sightings = st.builds(
    Sighting, domains, domains, st.sampled_from(["", "connection reset"]), st.sampled_from(["", "timeout"])
)
facts = st.builds(
    EndFacts,
    st.sampled_from([S.PRECHECKING, S.COPYING_BACKING, S.MIGRATING, S.VERIFYING]),
    st.one_of(st.none(), sightings),
    st.one_of(st.none(), st.just(NOT_RUNNING)),
    st.one_of(st.none(), st.sampled_from([Reason.NO_PROGRESS, Reason.ABORTED_BY_OPERATOR])),
    st.just(""),
    st.one_of(st.none(), st.just(Reason.PROVISION_FAILED)),
    st.just(""),
    st.booleans(),
)
ASKED = (S.MIGRATING, S.VERIFYING)


@given(facts)
def test_success_exactly_when_libvirt_was_asked_and_the_vm_runs_on_the_target_only(f: EndFacts) -> None:
    e = classify(f)
    s = f.seen
    moved = (
        f.reached in ASKED
        and s is not None
        and not s.source_error
        and not s.target_error
        and s.source is None
        and s.target is not None
        and s.target.running
    )
    assert (e.state == S.SUCCEEDED) == moved
    assert e.clean_source == moved
    assert (e.target == TargetFate.HAND_OVER) == moved


@given(facts)
def test_nothing_is_removed_that_could_be_the_vms_only_copy_or_in_use_on_the_target(f: EndFacts) -> None:
    e = classify(f)
    if e.target == TargetFate.REMOVE and f.reached in ASKED:
        s = f.seen
        assert s is not None and not s.source_error and not s.target_error
        assert s.target is None, "a domain on the target may use what the move made"
        assert s.source is not None, "the source must still hold the VM (and its disks)"
    if e.target == TargetFate.KEEP:
        assert e.state == S.NEEDS_ATTENTION


@given(facts)
def test_the_journal_state_and_outcome_agree_and_attention_only_after_libvirt_was_asked(f: EndFacts) -> None:
    e = classify(f)
    assert e.state.final
    assert e.status.value == e.state.value
    if e.state == S.NEEDS_ATTENTION:
        assert f.reached in ASKED
    if f.reached not in ASKED:
        assert e.state in (S.ABORTED, S.FAILED) and e.target == TargetFate.REMOVE


@given(facts)
def test_a_source_stopped_by_its_owner_with_a_clean_target_is_always_source_stopped(f: EndFacts) -> None:
    s = f.seen
    if f.reached not in ASKED or s is None or s.source_error or s.target_error:
        return
    if s.source is None or s.target is not None or s.source.job_active:
        return
    if s.source.state in ("shutoff", "crashed") and s.source.state_reason != "migrated":
        e = classify(f)
        assert (e.state, e.reason, e.target) == (S.FAILED, Reason.SOURCE_STOPPED, TargetFate.REMOVE)
        assert classify(replace(f, abort=Reason.ABORTED_BY_OPERATOR)).reason == Reason.SOURCE_STOPPED
