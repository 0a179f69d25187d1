"""Child process for the crash tests: lead (a short lease, kept renewed), run one move through a Runner
and wait (the test SIGKILLs it; its lease then expires and the test leads in a new term).

    exec_crashchild.py LAB_DIR STORE_URL VM SRC DST CAP_MIB_S [BACKING_VERIFY]

Prints the journal id first, then one line per event the test can pick a kill point from:
``P <phase> <bytes copied>`` for progress (phases copying_backing, disk, memory; every 0.1 s) and
``S <state>`` for each journal transition.
"""

from __future__ import annotations

import sys

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import Event, Progress, StateChanged
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.libvirt_hypervisor import libvirt_factory
from balancer.executor.runner import Runner
from balancer.lab import Lab
from balancer.model import Move, MoveCost
from balancer.reasons import Reason
from balancer.service.leadership import LeaseKeeper
from balancer.store import Store

LEASE_SECONDS = 3.0


def report(event: Event) -> None:
    if isinstance(event, Progress):
        print(f"P {event.phase} {event.bytes_copied}", flush=True)
    elif isinstance(event, StateChanged):
        print(f"S {event.record.state.value}", flush=True)


def main(lab_dir: str, store_url: str, vm: str, src: str, dst: str, cap: int, verify: str = "sha256") -> None:
    lab = Lab.open(lab_dir)
    eps = {h.name: MigrationEndpoint(h.name, h.control_uri, h.migration_uri) for h in lab.hosts}
    store = Store.open(store_url)
    keeper = LeaseKeeper(store, "crash-child", LEASE_SECONDS)
    keeper.start()
    term = keeper.term()
    assert term is not None, "the crash child could not lead"
    args = ExecutorArgs(memory_headroom_mib=64, poll_seconds=0.1, backing_verify=verify)  # type: ignore[arg-type]
    journal = store.journal(term.fence)
    runner = Runner(
        args, LimitArgs(bandwidth_mib_s=cap), libvirt_factory(eps), journal, eps, report, term=term
    )
    (rec,) = runner.submit([Move(vm, src, dst, Reason.DRAIN, MoveCost(0, 0, 0, 0.0))])
    print(rec.id, flush=True)
    runner.wait([rec.id])


if __name__ == "__main__":
    main(*sys.argv[1:6], int(sys.argv[6]), *sys.argv[7:8])
