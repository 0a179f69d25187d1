"""Child process for the crash test: lead (a short lease, kept renewed), run one move through a Runner
and wait (the test SIGKILLs it; its lease then expires and the test leads in a new term)."""

from __future__ import annotations

import sys

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.hypervisor import libvirt_factory
from balancer.executor.runner import Runner
from balancer.lab import Lab
from balancer.model import Move, MoveCost
from balancer.reasons import Reason
from balancer.service.leadership import LeaseKeeper
from balancer.store import Store

LEASE_SECONDS = 3.0


def main(lab_dir: str, store_url: str, vm: str, src: str, dst: str, cap: int) -> None:
    lab = Lab.open(lab_dir)
    eps = {h.name: MigrationEndpoint(h.name, h.control_uri, h.migration_uri) for h in lab.hosts}
    store = Store.open(store_url)
    keeper = LeaseKeeper(store, "crash-child", LEASE_SECONDS)
    keeper.start()
    term = keeper.term()
    assert term is not None, "the crash child could not lead"
    runner = Runner(
        ExecutorArgs(memory_headroom_mib=64),
        LimitArgs(bandwidth_mib_s=cap),
        libvirt_factory(eps),
        store.journal(term.fence),
        eps,
        term=term,
    )
    (rec,) = runner.submit([Move(vm, src, dst, Reason.DRAIN, MoveCost(0, 0, 0, 0.0))])
    print(rec.id, flush=True)
    runner.wait([rec.id])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
