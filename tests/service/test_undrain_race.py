"""An undrain racing the tick that plans and queues the drain's moves: once the undrain has committed,
no move of that drain ever starts. Ticks run in a thread; the undrain comes at a seeded random moment;
the store's own triggers then show, in commit order, that no move of the drain was queued or left the
queue after the undrain committed (a move caught queued ends aborted, `drain_cancelled`)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest

from balancer.api.actions import cancel_drain
from balancer.daemon import Running
from balancer.model import MoveState
from balancer.reasons import Reason
from balancer.store.records import DrainState, MoveStatus
from tests.ha.fleet import JournalHistory
from tests.service.conftest import driver_hosts

ROUNDS = 40


@pytest.mark.parametrize("automation", ["auto", "recommend"])
def test_no_move_of_a_cancelled_drain_starts_after_the_undrain(
    make_service: Callable[..., Running], automation: str
) -> None:
    rng = random.Random(1201)
    r = make_service(
        automation=automation,
        hosts=driver_hosts(),
        # the test driver cannot migrate: every move fails its pre-check; without cooldown and
        # quarantine the next round plans the same VMs again
        policy={"cooldown_minutes": 0, "quarantine_minutes": 0},
    )
    assert r.lease.renew() is not None
    history = JournalHistory(r.cfg.store.url)
    r.service.tick()
    r.service.tick()  # two polls: CPU rates known, plans from here on
    started_after, withdrawn = [], 0
    for _ in range(ROUNDS):
        drain, _ = r.store.create_drain("a", "ops", r.store.now())
        ticking = threading.Thread(target=lambda: [r.service.tick() for _ in range(2)])
        ticking.start()
        threading.Event().wait(rng.uniform(0.0, 0.06))  # the seeded moment of the undrain
        cancelled = cancel_drain(r.cfg, r.store, "a", "ops", r.store.now())
        ticking.join()
        r.service.intake()
        assert cancelled.state == DrainState.CANCELLED
        records = [rec for rec in r.store.records() if rec.drain_id == drain.id]
        for rec in records:
            if rec.outcome == Reason.DRAIN_CANCELLED:
                withdrawn += 1
                assert rec.started_at is None and rec.state == MoveState.ABORTED, rec
        # in commit order (the store's own triggers): nothing of the drain was queued or left `queued`
        # after the undrain committed
        started_after += history.after_cancel(drain.id, {rec.id for rec in records})
        if r.runner is not None:
            r.runner.wait(timeout=30)
    assert not started_after, (
        f"moves of a cancelled drain queued or started after the undrain: {started_after}"
    )
    history.check()
    stored = [m for p in r.store.plans() for m in p.moves if m.reason == Reason.DRAIN]
    assert all(m.status != MoveStatus.APPROVED or m.migration_id for m in stored)
    # how often the undrain caught a move still queued varies with timing (the lab test withdraws
    # queued moves deterministically); printed for the record
    print(f"{ROUNDS} rounds: {withdrawn} queued moves withdrawn by the undrain")
