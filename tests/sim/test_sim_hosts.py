"""The simulator's hosts through the Hypervisor seam: what the executor's pre-checks see of the arrays."""

from __future__ import annotations

import pytest

from balancer.executor.args import ExecutorArgs
from balancer.executor.prechecks import CheckContext, run_prechecks
from balancer.model import Move, MoveCost
from balancer.reasons import Reason
from balancer.sim import cluster as cluster_mod
from balancer.sim.args import SimArgs
from balancer.sim.cluster import MIB
from balancer.sim.hosts import hypervisors
from balancer.sim.trace import Trace


def test_a_host_shows_its_vms_volumes_pools_and_free_memory(trace: Trace, small: SimArgs) -> None:
    c = cluster_mod.build(small, trace)
    v = 7
    h = int(c.placement[v])
    hv = hypervisors(c)(c.host_names[h])
    assert hv.node().free_memory_bytes == int(c.host_memory[h] - c.host_memory_used()[h])
    dom = hv.domain(c.vm_names[v])
    assert dom is not None and dom == hv.domain(c.vm_uuids[v])
    assert (dom.running, dom.memory_bytes, dom.job_active) == (True, int(c.memory[v]), False)
    (disk,) = dom.disks
    top, base = hv.volume(disk.path), hv.volume(disk.backing[0].path)
    assert top is not None and top.allocation == int(c.overlay[v]) and top.backing == disk.backing[0]
    assert base is not None and base.physical == int(c.image_bytes[c.image[v]])
    free = int(c.host_disk[h] - c.disk_used()[h])
    assert {p.name: p.available for p in hv.pools()} == {"images": free, "_base": free}
    elsewhere = next(u for u in range(c.n_vms) if c.placement[u] != h)
    assert hv.domain(c.vm_names[elsewhere]) is None and hv.volume(c.disks[elsewhere].path) is None
    c.migrating[v] = True
    assert hypervisors(c)(c.host_names[h]).domain(c.vm_names[v]).job_active  # type: ignore[union-attr]


@pytest.mark.parametrize(("short", "reason"), [(0, Reason.SUCCEEDED), (1, Reason.TARGET_NO_MEMORY)])
def test_the_memory_check_counts_headroom_and_migrations_heading_there(
    trace: Trace, small: SimArgs, short: int, reason: Reason
) -> None:
    c = cluster_mod.build(small, trace)
    v, args = 0, ExecutorArgs(memory_headroom_mib=256)
    t = (int(c.placement[v]) + 1) % c.n_hosts
    incoming = 3 << 30
    need = int(c.memory[v]) + 256 * MIB + incoming
    c.host_memory[t] = int(c.host_memory_used()[t]) + need - short  # exactly enough, or one byte short
    mv = Move(
        c.vm_names[v],
        c.host_names[int(c.placement[v])],
        c.host_names[t],
        Reason.BALANCE,
        MoveCost(0, 0, 0, 0.0),
    )
    check = run_prechecks(
        mv, hypervisors(c), CheckContext(args, c.host_names, incoming_memory_bytes=incoming)
    )
    assert check.reason == reason, check.message
    if check.ok:
        assert check.storage is not None and check.storage.copy == "incremental"
        assert check.storage.bytes_to_copy == int(c.overlay[v]) + c.missing_backing(v, t)
