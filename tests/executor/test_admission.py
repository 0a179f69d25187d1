"""Admission: limits are never exceeded, priority then plan order, no head-of-line blocking."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.executor.admission import Admit, Pending, Running, Wait, admit, effective_bandwidth
from balancer.executor.args import LimitArgs
from balancer.reasons import Reason

HOSTS = ["h1", "h2", "h3", "h4", "h5"]


def pending(i: int, src: str, dst: str, prio: int = 1, bw: int = 50) -> Pending:
    return Pending(f"m{i}", src, dst, bw, prio, i)


def test_defaults_one_out_one_in_per_host() -> None:
    limits = LimitArgs(**{"global": 10})
    q = [pending(0, "h1", "h2"), pending(1, "h1", "h3"), pending(2, "h3", "h2"), pending(3, "h4", "h5")]
    out = admit(q, [], limits, 5)
    assert [type(d) for d in out] == [Admit, Wait, Wait, Admit]
    assert out[1] == Wait("m1", Reason.WAIT_SOURCE_BUSY, out[1].detail)  # type: ignore[union-attr]
    assert isinstance(out[2], Wait) and out[2].reason == Reason.WAIT_TARGET_BUSY
    assert "h2" in out[2].detail


def test_no_head_of_line_blocking_behind_a_busy_host() -> None:
    limits = LimitArgs(**{"global": 5})
    running = [Running("r", "h1", "h2", 50)]
    q = [pending(0, "h1", "h3"), pending(1, "h4", "h5")]
    out = admit(q, running, limits, 5)
    assert out[0] == Wait("m0", Reason.WAIT_SOURCE_BUSY, out[0].detail)  # type: ignore[union-attr]
    assert out[1] == Admit("m1")


def test_priority_before_plan_order() -> None:
    limits = LimitArgs(**{"global": 1})
    q = [pending(0, "h1", "h2", prio=4), pending(1, "h3", "h4", prio=1)]
    out = admit(q, [], limits, 5)
    assert out[0] == Admit("m1")
    assert isinstance(out[1], Wait) and out[1].reason == Reason.WAIT_GLOBAL_LIMIT


def test_bandwidth_budget_per_host() -> None:
    limits = LimitArgs(**{"global": 5}, per_source=3, per_target=3, host_bandwidth_mib_s=100)
    q = [pending(0, "h1", "h2", bw=60), pending(1, "h1", "h3", bw=60), pending(2, "h1", "h3", bw=40)]
    out = admit(q, [], limits, 5)
    assert out[0] == Admit("m0")
    assert isinstance(out[1], Wait) and out[1].reason == Reason.WAIT_BANDWIDTH
    assert out[2] == Admit("m2")  # fits in what is left of h1's budget


def test_effective_bandwidth_is_clamped_to_the_host_budget() -> None:
    limits = LimitArgs(bandwidth_mib_s=100, host_bandwidth_mib_s=150)
    assert effective_bandwidth(0, limits) == 100
    assert effective_bandwidth(500, limits) == 150
    assert effective_bandwidth(20, limits) == 20


def test_global_limit_default_from_host_count() -> None:
    assert LimitArgs().global_limit(3) == 1
    assert LimitArgs().global_limit(20) == 5


moves = st.lists(
    st.tuples(st.sampled_from(HOSTS), st.sampled_from(HOSTS), st.integers(0, 4), st.integers(1, 120)).filter(
        lambda t: t[0] != t[1]
    ),
    max_size=25,
)
limit_args = st.builds(
    lambda g, s, t, bw, hb: LimitArgs(
        **{"global": g}, per_source=s, per_target=t, bandwidth_mib_s=bw, host_bandwidth_mib_s=max(bw, hb)
    ),
    st.integers(1, 6),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 100),
    st.integers(1, 300),
)


def _run(q: list[Pending], limits: LimitArgs, rounds: int) -> list[list[Running]]:
    """Simulate: admit, then the oldest running move finishes; return the running set after each pass."""
    running: list[Running] = []
    history = []
    queue = list(q)
    for _ in range(rounds):
        decisions = admit(queue, running, limits, len(HOSTS))
        by_id = {p.id: p for p in queue}
        for d in decisions:
            if isinstance(d, Admit):
                p = by_id[d.id]
                running.append(Running(p.id, p.source, p.target, p.bandwidth_mib_s))
                queue.remove(p)
        history.append(list(running))
        if running:
            running.pop(0)
    return history


@settings(max_examples=300, deadline=None)
@given(moves, limit_args)
def test_limits_never_exceeded(specs: list[tuple[str, str, int, int]], limits: LimitArgs) -> None:
    q = [
        pending(i, s, t, prio, min(bw, limits.host_bandwidth_mib_s))
        for i, (s, t, prio, bw) in enumerate(specs)
    ]
    for running in _run(q, limits, len(q) + 2):
        assert len(running) <= limits.global_limit(len(HOSTS))
        out = Counter(r.source for r in running)
        inc = Counter(r.target for r in running)
        assert all(n <= limits.per_source for n in out.values())
        assert all(n <= limits.per_target for n in inc.values())
        for h in HOSTS:
            used = sum(r.bandwidth_mib_s for r in running if h in (r.source, r.target))
            assert used <= limits.host_bandwidth_mib_s


@settings(max_examples=300, deadline=None)
@given(moves, limit_args)
def test_every_wait_is_justified(specs: list[tuple[str, str, int, int]], limits: LimitArgs) -> None:
    """A move that waits would break a limit if admitted on top of the moves admitted before it
    (i.e. no move waits merely because an earlier move in the queue waits: no head-of-line blocking)."""
    q = [
        pending(i, s, t, prio, min(bw, limits.host_bandwidth_mib_s))
        for i, (s, t, prio, bw) in enumerate(specs)
    ]
    decisions = admit(q, [], limits, len(HOSTS))
    by_id = {p.id: p for p in q}
    taken: list[Pending] = []
    for d in decisions:
        p = by_id[d.id]
        if isinstance(d, Admit):
            taken.append(p)
            continue
        trial = [*taken, p]
        breaks = (
            len(trial) > limits.global_limit(len(HOSTS))
            or sum(x.source == p.source for x in trial) > limits.per_source
            or sum(x.target == p.target for x in trial) > limits.per_target
            or any(
                sum(x.bandwidth_mib_s for x in trial if h in (x.source, x.target))
                > limits.host_bandwidth_mib_s
                for h in (p.source, p.target)
            )
        )
        assert breaks, f"{p} waited ({d.reason}) though it fit"


@settings(max_examples=200, deadline=None)
@given(moves)
def test_admitted_in_priority_then_plan_order(specs: list[tuple[str, str, int, int]]) -> None:
    limits = LimitArgs(**{"global": 1})
    q = [pending(i, s, t, prio) for i, (s, t, prio, _bw) in enumerate(specs)]
    order = [r[0].id for r in _run(q, limits, len(q)) if r]
    expected = [p.id for p in sorted(q, key=lambda p: (p.priority, p.seq))]
    assert order == expected


def test_a_move_waits_for_the_moves_that_make_room_on_its_target() -> None:
    limits = LimitArgs(**{"global": 5}, per_source=2, per_target=2)
    # m1 (h3 -> h1) needs the room m0 (h1 -> h2) frees; m2 is independent and goes ahead.
    q = [
        pending(0, "h1", "h2"),
        replace(pending(1, "h3", "h1"), after=frozenset({"m0"})),
        pending(2, "h4", "h5"),
    ]
    out = admit(q, [], limits, 5)
    assert out[0] == Admit("m0") and out[2] == Admit("m2")
    assert isinstance(out[1], Wait) and out[1].reason == Reason.WAIT_FOR_ROOM and "m0" in out[1].detail
    # still waiting while m0 runs; admitted once m0 is neither queued nor running
    out = admit([q[1]], [Running("m0", "h1", "h2", 50)], limits, 5)
    assert isinstance(out[0], Wait) and out[0].reason == Reason.WAIT_FOR_ROOM
    assert admit([q[1]], [], limits, 5) == [Admit("m1")]
