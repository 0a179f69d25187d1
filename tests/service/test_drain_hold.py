"""A host whose drain finished stays in maintenance until an operator undrains it."""

from __future__ import annotations

from collections.abc import Callable

from balancer.api.actions import cancel_drain
from balancer.daemon import Running
from balancer.model import HostState
from balancer.store.records import DrainState


def state_of(r: Running, host: str) -> HostState:
    assert r.service.live().snapshot is not None
    return r.service.live().snapshot.host(host).state


def test_finished_drain_keeps_the_host_out_of_placement_until_undrain(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="recommend")
    assert r.lease.renew() is not None
    drain, _ = r.store.create_drain("c", "ops", 1.0)
    r.service.tick()
    assert state_of(r, "c") == HostState.DRAINING
    term = r.lease.term()
    assert term is not None
    r.store.finish_drain(drain.id, 2.0, fence=term.fence)  # as the service does once c is empty

    r.service.tick()
    assert state_of(r, "c") == HostState.MAINTENANCE, "a drained host must not take VMs again by itself"
    plan = r.service.live().plan
    assert plan is not None and all(m.target != "c" for m in plan.moves)

    released = cancel_drain(r.cfg, r.store, "c", "ops", 3.0)  # `balancer undrain c`
    assert released.state == DrainState.RELEASED
    r.service.tick()
    assert state_of(r, "c") == HostState.UP
    actions = [e.action for e in r.store.audit_log(subject=f"drain/{drain.id}")]
    assert "drain.release" in actions
