"""What each automation level starts and how stored plans live (service/acting.py), on a real Service over
libvirt test-driver hosts and a real store: a proposal kept and refreshed while the planner repeats it,
superseded by a different one, expired when it stops; drain moves (and the moves making their room)
approved by the drain request itself; approvals started by the next intake; withdrawn and busy moves."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from balancer.api import actions
from balancer.daemon import Running
from balancer.errors import Conflict, ErrorCode
from balancer.model import Plan
from balancer.reasons import Reason
from balancer.service.acting import Acting, Term, drain_closure, signature
from balancer.store.records import MoveStatus, PlanStatus
from tests.builders import NOW
from tests.service.conftest import driver_hosts
from tests.store.builders import move
from tests.waiting import wait_for

TTL = 60.0
HOT_A = driver_hosts(a={"cpus": 3})  # host a's four busy VMs on 3 usable cores: the planner relieves it


def plan(*moves: object) -> Plan:
    return Plan(created_at=NOW, moves=tuple(moves), skips=(), imbalance_before=0.3, imbalance_after=0.1)  # type: ignore[arg-type]


def leading(r: Running) -> Term:
    """The leader's term and its Runner, started by an intake (as the loop does between ticks)."""
    lease = r.lease.renew()
    assert lease is not None
    r.service.intake()
    assert r.runner is not None
    return Term(lease, r.runner)


def acting(r: Running, term: Term, now: float, drains: dict[str, int] | None = None,
           busy: set[str] | None = None) -> Acting:  # fmt: skip
    return Acting(r.store, term, r.metrics, now, drains or {}, busy if busy is not None else set())


def test_drain_closure_takes_drain_moves_and_every_move_they_wait_for() -> None:
    p = plan(
        move("room-2", "b", "c"),  # room-1 waits for it
        move("room-1", "c", "a", after=("room-2",)),
        move("web1", "a", "c", reason=Reason.DRAIN, after=("room-1",)),
        move("other", "b", "a"),
    )
    assert drain_closure(p) == {0, 1, 2}
    assert drain_closure(plan(move("x", "a", "b"))) == set()
    assert signature(p)[2] == ("web1", "a", "c", "drain")


def test_a_repeated_proposal_keeps_its_id_and_its_expiry_moves_on(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="recommend")
    term = leading(r)
    proposal = plan(move("web1", "a", "c"), move("web2", "a", "b"))
    first = acting(r, term, NOW).act(proposal, "recommend", TTL)
    again = acting(r, term, NOW + 10).act(proposal, "recommend", TTL)
    assert first is not None and again == first
    (row,) = r.store.plans(status=PlanStatus.PROPOSED)
    assert (row.id, row.expires_at) == (first, NOW + 10 + TTL)
    assert r.store.records() == (), "a proposal starts nothing"


def test_a_different_proposal_supersedes_and_an_empty_plan_ends_the_proposal(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="recommend")
    term = leading(r)
    first = acting(r, term, NOW).act(plan(move("web1", "a", "c")), "recommend", TTL)
    second = acting(r, term, NOW + 1).act(plan(move("web1", "a", "b")), "recommend", TTL)
    assert second != first
    assert r.store.get_plan(first).status == PlanStatus.SUPERSEDED  # type: ignore[arg-type]
    assert acting(r, term, NOW + 2).act(plan(), "recommend", TTL) is None
    assert r.store.get_plan(second).status == PlanStatus.SUPERSEDED  # type: ignore[arg-type]
    assert r.store.plans(status=PlanStatus.PROPOSED) == ()


def test_a_proposal_the_planner_stopped_making_expires_and_its_approval_is_refused(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="recommend")
    term = leading(r)
    pid = acting(r, term, NOW).act(plan(move("web1", "a", "c")), "recommend", TTL)
    assert pid is not None
    acting(r, term, NOW + TTL).start_approved()  # an intake at the expiry
    assert r.store.get_plan(pid).status == PlanStatus.EXPIRED
    with pytest.raises(Conflict) as refused:
        actions.decide_plan(r.store, pid, True, "ops", NOW + TTL + 1)
    assert refused.value.code in (ErrorCode.PLAN_CLOSED, ErrorCode.PLAN_EXPIRED)
    assert r.store.records() == ()


def test_an_approved_move_of_the_current_proposal_starts_at_the_next_intake(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="recommend")
    term = leading(r)
    now = r.store.now()
    pid = acting(r, term, now).act(plan(move("web1", "a", "c"), move("web2", "a", "b")), "recommend", 3600)
    assert pid is not None
    actions.decide_move(r.store, pid, 1, True, "ops", now)
    r.service.intake()  # no tick needed: approvals act within an intake
    (rec,) = r.store.records()
    assert (rec.vm, rec.target, rec.plan_id) == ("web2", "b", pid)
    moves = r.store.get_plan(pid).moves
    assert moves[1].migration_id == rec.id and moves[1].status in (MoveStatus.STARTED, MoveStatus.FAILED)
    assert moves[0].status == MoveStatus.PROPOSED
    r.service.intake()  # the same approval is not started twice
    assert len(r.store.records()) == 1


def test_recommend_starts_drain_moves_and_their_room_at_once_and_proposes_the_rest(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="recommend")
    term = leading(r)
    drain, _ = r.store.create_drain("a", "ops", NOW)
    p = plan(
        move("web3", "c", "b"),  # makes room on c for the drain move
        move("web1", "a", "c", reason=Reason.DRAIN, after=("web3",)),
        move("db1", "b", "c"),  # an ordinary balance move
    )
    proposal = acting(r, term, NOW, drains={"a": drain.id}).act(p, "recommend", TTL)
    (approved,) = r.store.plans(status=PlanStatus.APPROVED)
    assert (approved.decided_by, [m.vm for m in approved.plan.moves]) == ("drain-request", ["web3", "web1"])
    assert proposal is not None and [m.vm for m in r.store.get_plan(proposal).plan.moves] == ["db1"]
    records = {rec.vm: rec for rec in r.store.records()}
    assert set(records) == {"web3", "web1"}
    assert (records["web1"].drain_id, records["web3"].drain_id) == (drain.id, None)


def test_a_drain_move_of_a_closed_drain_is_withdrawn_and_a_busy_vm_is_skipped(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="auto")
    term = leading(r)
    p = plan(move("web1", "a", "c", reason=Reason.DRAIN), move("web2", "a", "b"), move("db1", "a", "b"))
    pid = acting(r, term, NOW, drains={}, busy={"web2"}).act(p, "auto", TTL)
    assert pid is not None
    row = r.store.get_plan(pid)
    assert row.status == PlanStatus.APPROVED
    assert [m.status for m in row.moves][:2] == [MoveStatus.WITHDRAWN, MoveStatus.SKIPPED]
    assert row.moves[2].migration_id is not None
    assert [rec.vm for rec in r.store.records()] == ["db1"]


def test_auto_stores_each_plan_approved_and_supersedes_the_older_ones(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="auto")
    term = leading(r)
    old = acting(r, term, NOW).act(plan(move("web1", "a", "c")), "recommend", TTL)
    new = acting(r, term, NOW + 1).act(plan(move("web2", "a", "b")), "auto", TTL)
    assert r.store.get_plan(old).status == PlanStatus.SUPERSEDED  # type: ignore[arg-type]
    assert r.store.get_plan(new).status == PlanStatus.APPROVED  # type: ignore[arg-type]
    wait_for("web2's move journaled", lambda: [rec.vm for rec in r.store.records()] == ["web2"], 10)


def test_the_service_proposes_once_cpu_rates_are_known_and_keeps_the_proposal_across_ticks(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="recommend", hosts=HOT_A)
    assert r.lease.renew() is not None
    assert r.service.tick() is None  # the first tick knows no CPU rate: no plan
    assert r.store.plans() == ()
    made = r.service.tick()
    assert made is not None and made.moves
    assert r.store.plans(status=PlanStatus.PROPOSED)
    # the first CPU rates of a test-driver host span a partial interval (host a read 3.1 cores, then
    # 4.0): the next plan may truly differ (relief added). From then on the load is steady, and noise
    # between equal choices must not replace the proposal (policy/standing.py)
    r.service.tick()
    (row,) = r.store.plans(status=PlanStatus.PROPOSED)
    assert r.service.live().plan_id == row.id
    for _ in range(3):
        r.service.tick()
        (again,) = r.store.plans(status=PlanStatus.PROPOSED)
        assert again.id == row.id and again.expires_at > row.expires_at  # type: ignore[operator]
        row = again
