"""Held-out validation: the day's VMs split into two disjoint halves; the day shifted for warm-up."""

from __future__ import annotations

import numpy as np

from balancer.sim import trace as trace_mod
from balancer.sim.compare import load_trace


def test_the_halves_are_disjoint_cover_every_vm_and_keep_their_rows(trace: trace_mod.Trace) -> None:
    halves = trace_mod.halves(trace)
    tune, held = set(halves["tune"].names), set(halves["held_out"].names)
    assert not tune & held and tune | held == set(trace.names)
    assert abs(len(tune) - len(held)) <= 1
    row = {n: i for i, n in enumerate(trace.names)}
    for h in halves.values():
        assert np.array_equal(h.util, trace.util[[row[n] for n in h.names]])


def test_the_split_is_fixed_by_its_seed(trace: trace_mod.Trace) -> None:
    assert trace_mod.halves(trace)["tune"].names == load_trace(half="tune").names
    assert trace_mod.halves(trace, seed=7)["tune"].names != trace_mod.halves(trace)["tune"].names


def test_a_shifted_day_starts_later_and_wraps_round(trace: trace_mod.Trace) -> None:
    s = trace_mod.shifted(trace, 24)
    assert np.array_equal(s.util[:, 0], trace.util[:, 24])
    assert np.array_equal(s.util[:, -24], trace.util[:, 0])
