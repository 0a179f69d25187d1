"""Per-tick records of a simulated run: what the planner saw, why each move was taken, what it did."""

from __future__ import annotations

import numpy as np

from balancer.model import MoveState
from balancer.policy import plan
from balancer.sim.args import SimArgs
from balancer.sim.diagnostics import TickRecorder, hindsight, summarize_values
from balancer.sim.run import run
from balancer.sim.trace import Trace


def test_every_move_is_recorded_with_its_reason_and_scored_on_the_true_load(trace: Trace) -> None:
    rec = TickRecorder()
    result = run(plan, SimArgs(hosts=8, vms=160, seed=2), trace, hours=6, observe=rec)
    c = result.cluster
    assert c is not None and result.executor is not None
    assert len(rec.placement) == len(rec.seen_cpu) == 72
    assert rec.moves, "a 6-hour run on 8 hosts plans some moves"
    assert all(m.reason and m.detail for m in rec.moves)
    balance = [m for m in rec.moves if m.reason == "balance"]
    assert all("chance over the CPU mark" in m.detail for m in balance)
    values = hindsight(rec, result, horizon=6)
    assert len(values) == len(rec.moves)
    done = {r.vm for r in result.executor.finished if r.state == MoveState.SUCCEEDED}
    for v in values:
        if v.horizon == 0:
            continue
        assert v.move.vm in done
        f = v.finished_tick + 1
        span = range(f, min(72, f + v.horizon))
        i = c.vm_index[v.move.vm]
        assert v.real_vm_cores == np.mean([c.demand(j)[i] for j in span])  # the trace, not the smoothed view
        assert np.isfinite(v.real_source_cpu) and np.isfinite(v.real_target_cpu)
    summary = summarize_values(values, first_ticks=24)
    assert summary["all"]["moves"] == len(balance)
    assert summary["first"]["moves"] + summary["rest"]["moves"] == len(balance)
