"""Properties over random clusters: capacity, eligibility, rules, drains, determinism, predictions."""

from __future__ import annotations

import fnmatch
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings

from balancer.model import HostState, PastMove, Plan
from balancer.policy import plan
from balancer.reasons import Reason
from tests.builders import NOW
from tests.policy.oracle import apply, imbalance, loads, usable, used
from tests.policy.strategies import Case, cases, tight_drains

EXAMPLES = settings(max_examples=70, deadline=None)
STD_DEV = {"balance_objective": "imbalance"}


def run(case: Case) -> Plan:
    return plan(case.snap, case.state, case.args, NOW)


def where(case: Case) -> dict[str, str]:
    flight = {m.vm: m.target for m in case.state.in_flight}
    return {v.name: flight.get(v.name, v.host) for v in case.snap.vms}


@EXAMPLES
@given(cases())
def test_every_target_stays_under_its_marks_and_is_eligible(case: Case) -> None:
    p = run(case)
    th, cap = case.args.thresholds, usable(case.snap, case.args)
    cur = case.snap
    for m in p.moves:
        h = case.snap.host(m.target)
        assert h.state == HostState.UP and m.target not in case.state.draining
        assert m.target not in case.args.rules.exclude_hosts
        cur = apply(cur, [m])
        use = used(cur, case.state, case.args.policy.cpu_burst_sigmas)[m.target]
        assert use[0] <= th.cpu_high * cap[m.target][0] * (1 + 1e-9) + 1e-9
        assert use[1] <= th.memory_high * cap[m.target][1] * (1 + 1e-9) + 1
        if h.disk_capacity_bytes:
            assert use[2] <= th.disk_high * h.disk_capacity_bytes


@EXAMPLES
@given(cases())
def test_rules_are_never_broken_by_the_plan(case: Case) -> None:
    p = run(case)
    rules, snap = case.args.rules, case.snap
    flying = {m.vm for m in case.state.in_flight}
    pol = case.args.policy
    quarantined = {
        r.vm
        for r in case.state.recent
        if not r.succeeded and NOW - r.finished_at < pol.quarantine_minutes * 60
    }
    cooling = {
        r.vm: r.source
        for r in case.state.recent
        if r.succeeded and NOW - r.finished_at < pol.cooldown_minutes * 60
    }
    assert len({m.vm for m in p.moves}) == len(p.moves), "a VM moves at most once per plan"
    place = where(case)
    anti = [set(r.vms) for r in rules.anti_affinity]
    for g in {t for v in snap.vms for t in v.tags.groups}:
        anti.append({v.name for v in snap.vms if g in v.tags.groups})
    together_before = [
        set(r.vms) for r in rules.affinity if len({place[v] for v in r.vms if v in place}) == 1
    ]
    for m in p.moves:
        v = snap.vm(m.vm)
        assert v.running and not v.migrating and m.vm not in flying and m.vm not in quarantined
        assert not v.tags.exclude and not any(fnmatch.fnmatch(m.vm, pat) for pat in rules.exclude_vms)
        if m.vm in cooling:
            assert m.reason == Reason.DRAIN
        pins = [set(r.hosts) for r in rules.pins if r.vm == m.vm] + (
            [set(v.tags.pin_hosts)] if v.tags.pin_hosts else []
        )
        assert all(m.target in s for s in pins)
        for lr in rules.host_labels:
            if lr.required and any(fnmatch.fnmatch(m.vm, pat) for pat in lr.vms):
                assert all(snap.host(m.target).labels.get(k) == val for k, val in lr.labels.items())
        for group in anti:
            if m.vm in group:
                assert not any(place[o] == m.target for o in group - {m.vm} if o in place), (m, group)
        place[m.vm] = m.target
    for group in together_before:
        assert len({place[v] for v in group if v in place}) == 1, group


@EXAMPLES
@given(cases())
def test_drained_hosts_end_empty_or_every_remaining_vm_says_why(case: Case) -> None:
    p = run(case)
    after = where(case) | {m.vm: m.target for m in p.moves}
    skipped = {s.name for s in p.skips if s.subject == "vm"}
    host_skips = {s.name for s in p.skips if s.subject == "host"}
    for h in case.snap.hosts:
        if h.state == HostState.DRAINING or h.name in case.state.draining:
            if h.state == HostState.DOWN or h.name in case.args.rules.exclude_hosts:
                assert h.name in host_skips
                continue
            left = [v for v, at in after.items() if at == h.name]
            assert all(v in skipped for v in left), (h.name, left, p.skips)
            if left:
                assert h.name in host_skips


@settings(max_examples=40, deadline=None)
@given(cases())
def test_plan_is_deterministic_and_independent_of_input_order(case: Case) -> None:
    p = run(case)
    assert run(case) == p
    rng = random.Random(1)
    hosts, vms = list(case.snap.hosts), list(case.snap.vms)
    rng.shuffle(hosts)
    rng.shuffle(vms)
    shuffled = replace(case, snap=replace(case.snap, hosts=tuple(hosts), vms=tuple(vms)))
    assert run(shuffled) == p


@EXAMPLES
@given(cases())
def test_applying_the_moves_gives_the_predicted_after_state(case: Case) -> None:
    p = run(case)
    args, state = case.args, case.state
    approx = lambda x: pytest.approx(x, rel=1e-9, abs=1e-9)  # noqa: E731
    before = imbalance(case.snap, state, args)
    assert p.imbalance_before == approx(before[0])
    assert p.resource_imbalance_before == {"cpu": approx(before[1]), "memory": approx(before[2])}
    cur = case.snap
    for m in p.moves:
        ld = loads(cur, state, args)
        assert m.imbalance_before == approx(imbalance(cur, state, args)[0])
        assert m.source_load.before == {"cpu": approx(ld[m.source][0]), "memory": approx(ld[m.source][1])}
        assert m.target_load.before == {"cpu": approx(ld[m.target][0]), "memory": approx(ld[m.target][1])}
        cur = apply(cur, [m])
        ld = loads(cur, state, args)
        assert m.source_load.after == {"cpu": approx(ld[m.source][0]), "memory": approx(ld[m.source][1])}
        assert m.target_load.after == {"cpu": approx(ld[m.target][0]), "memory": approx(ld[m.target][1])}
        assert m.imbalance_after == approx(imbalance(cur, state, args)[0])
    after = imbalance(cur, state, args)
    assert p.imbalance_after == approx(after[0])
    assert p.resource_imbalance_after == {"cpu": approx(after[1]), "memory": approx(after[2])}


@EXAMPLES
@given(cases(rules=False, budget=20))
def test_no_ping_pong_planning_again_after_the_moves_gives_no_balance_move(case: Case) -> None:
    first = run(case)
    if any(s.name == "balance" and s.reason == Reason.BUDGET_SPENT for s in first.skips):
        return
    done = tuple(PastMove(m.vm, m.source, m.target, NOW, True) for m in first.moves)
    again = Case(
        apply(case.snap, first.moves), replace(case.state, recent=case.state.recent + done), case.args
    )
    second = run(again)
    if any(m.reason != Reason.BALANCE for m in second.moves):
        return  # a drain or relief that only became possible now changes the state balance starts from
    assert [m for m in second.moves if m.reason == Reason.BALANCE] == []
    assert not {m.vm for m in second.moves} & {m.vm for m in first.moves}


@settings(max_examples=30, deadline=None)
@given(cases(rules=False))
def test_a_balanced_cluster_yields_no_moves(case: Case) -> None:
    """Objective "imbalance": balanced = imbalance at or under target (overload objective:
    test_balance_overload.py)."""
    case = replace(case, args=replace(case.args, policy=case.args.policy.model_copy(update=STD_DEV)))
    p = run(case)
    if p.imbalance_before <= case.args.thresholds.target_imbalance and not any(
        m.reason != Reason.BALANCE for m in p.moves
    ):
        assert p.moves == ()
        assert any(s.reason == Reason.BALANCED for s in p.skips)


@EXAMPLES
@given(cases())
def test_moves_started_together_fit_when_they_wait_only_for_their_after(case: Case) -> None:
    check_after(case)


@settings(max_examples=150, deadline=None)
@given(tight_drains())
def test_moves_onto_memory_tight_hosts_wait_for_the_room_their_after_makes(case: Case) -> None:
    # About one example in six needs room made first (measured), so this is where ``after`` is tested.
    check_after(case)


def check_after(case: Case) -> None:
    # The executor runs a plan's moves concurrently; a move waits only for the moves its ``after``
    # names. So each target must hold the VM while every other VM leaving it (in flight or planned
    # earlier) is still there, and every earlier arrival has landed: memory within usable capacity.
    p = run(case)
    cap = usable(case.snap, case.args)
    flight = {m.vm: m for m in case.state.in_flight}
    mem = {v.name: v.memory_bytes for v in case.snap.vms}
    leaving: dict[str, list[str]] = {}
    for m in case.state.in_flight:
        if m.vm in mem and m.source != m.target:
            leaving.setdefault(m.source, []).append(m.vm)
    arrived: dict[str, list[str]] = {}
    for m in case.state.in_flight:
        if m.vm in mem:
            arrived.setdefault(m.target, []).append(m.vm)
    for m in p.moves:
        assert set(m.after) <= set(leaving.get(m.target, ())), (m, leaving.get(m.target))
        physical = [v.name for v in case.snap.vms if v.host == m.target and v.name not in flight]
        physical += leaving.get(m.target, []) + arrived.get(m.target, []) + [m.vm]
        held = sum(mem[n] for n in set(physical) - set(m.after))
        assert held <= cap[m.target][1] * (1 + 1e-9) + 1, (m, held, cap[m.target][1])
        leaving.setdefault(m.source, []).append(m.vm)
        arrived.setdefault(m.target, []).append(m.vm)
