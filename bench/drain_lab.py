"""Drain h1 of a fresh lab through the executor's Runner and compare the wall time with the physical limit.

The physical limit is the bytes libvirt actually moved (disk mirror + RAM, from the journal) divided by
the bandwidth the limits allow out of the drained host: min(per_source, targets) × the per-migration
cap, bounded by the host budget. Base images are seeded on the targets first (an image cache), so only
overlays and RAM travel. Prints the figures and writes bench/results/drain_lab.json
(drain_lab_quick.json for --quick).

    python bench/drain_lab.py            # 4 guests (256 MiB RAM, 128 MiB overlay), 10 MiB/s caps, 2 at a time
    python bench/drain_lab.py --quick    # CI smoke: 2 small guests
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.executor.events import Event, OutcomeStatus, StateChanged
from balancer.executor.facts import MigrationEndpoint
from balancer.executor.libvirt_hypervisor import libvirt_factory
from balancer.executor.runner import Runner
from balancer.model import Move, MoveCost
from balancer.reasons import Reason
from balancer.service import libvirt_process

MIB = 1 << 20
BASE = "/var/lib/libvirt/base/labguest-base.raw"
RESULTS = Path(__file__).with_name("results") / "drain_lab.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke: 2 small guests")
    ap.add_argument("--guests", type=int, default=4)
    ap.add_argument("--cap", type=int, default=10, help="per-migration cap, MiB/s")
    ap.add_argument("--per-source", type=int, default=2)
    ap.add_argument("--overlay-mib", type=int, default=128, help="data written to each overlay (at most 128)")
    ap.add_argument("--memory-mib", type=int, default=256)
    a = ap.parse_args(argv)
    if a.quick:
        a.guests, a.cap, a.overlay_mib, a.memory_mib = 2, 50, 16, 96
    libvirt_process.quiet_errors()  # as balancer run does at its start: handled errors stay off stderr
    if os.geteuid() != 0 or shutil.which("libvirtd") is None:
        print("drain_lab: skipped (needs root and libvirtd for the lab)")
        return 0
    from balancer.lab import Lab

    workdir = Path(tempfile.mkdtemp(prefix="drain-lab-"))
    lab = Lab.up(hosts=3, directory=workdir / "lab")
    try:
        return run(lab, a, workdir)
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)


def run(lab, a: argparse.Namespace, workdir: Path) -> int:  # type: ignore[no-untyped-def]
    from balancer.store import Store
    from balancer.store.records import Fence

    names = [f"d{i}" for i in range(a.guests)]
    for n in names:
        lab.create_guest(
            n, "h1", memory_mib=a.memory_mib, overlay_mib=a.overlay_mib, dirty_mib_s=0, disk_mib_s=0
        )
    for n in names:
        lab.wait_heartbeat("h1", n, timeout=180)
    for h in ("h2", "h3"):  # seed the image cache on the targets
        shutil.copyfile(lab.host_path("h1", BASE), lab.host_path(h, BASE))
        conn = lab.connect(h)
        conn.storagePoolLookupByName("base").refresh(0)
        conn.close()
    for h in lab.hosts:
        # A freshly started libvirtd probes QEMU on its first getVersion (about 4 s here). In a running
        # service the collector has made that call on every host long before a drain, so do it too.
        conn = lab.connect(h.name)
        conn.getVersion()
        conn.close()
    eps = {h.name: MigrationEndpoint(h.name, h.control_uri, h.migration_uri) for h in lab.hosts}
    limits = LimitArgs(
        **{"global": a.per_source},
        per_source=a.per_source,
        per_target=1,
        bandwidth_mib_s=a.cap,
        host_bandwidth_mib_s=a.cap * a.per_source,
    )
    store = Store.open(f"sqlite:///{workdir / 'journal.db'}")
    grant = store.acquire_lease("bench-drain-lab", 24 * 3600.0)  # the bench leads: its journal is fenced
    assert grant is not None, "another instance leads this journal"
    events: list[tuple[float, Event]] = []
    runner = Runner(
        ExecutorArgs(memory_headroom_mib=64),
        limits,
        libvirt_factory(eps),
        store.journal(Fence("bench-drain-lab", grant.epoch)),
        eps,
        lambda e: events.append((time.monotonic(), e)),
    )
    moves = [
        Move(n, "h1", ("h2", "h3")[i % 2], Reason.DRAIN, MoveCost(0, 0, 0, 0.0)) for i, n in enumerate(names)
    ]
    started = time.monotonic()
    recs = runner.submit(moves)
    outs = runner.wait([r.id for r in recs], timeout=1800)
    wall = time.monotonic() - started
    runner.shutdown(0)
    store.close()
    ok = [o for o in outs if o.status == OutcomeStatus.SUCCEEDED]
    moved = sum(o.record.disk_bytes + o.record.memory_bytes for o in outs)
    durations = [
        (o.record.finished_at or 0) - (o.record.started_at or 0)
        for o in outs
        if o.record.started_at is not None
    ]
    allowed = min(a.per_source, 2, limits.global_limit(3)) * a.cap
    allowed = min(allowed, limits.host_bandwidth_mib_s)
    physical = moved / (allowed * MIB)
    result = {
        "guests": a.guests,
        "succeeded": len(ok),
        "cap_mib_s": a.cap,
        "per_source": a.per_source,
        "allowed_mib_s": allowed,
        "bytes_moved": moved,
        "mib_moved": round(moved / MIB, 1),
        "wall_s": round(wall, 2),
        "physical_limit_s": round(physical, 2),
        "ratio": round(wall / physical, 3) if physical else None,
        "per_migration_s": [round(d, 2) for d in durations],
        "downtime_ms": [o.record.downtime_ms for o in outs],
        "phase_s": phase_seconds(events),
        "quick": a.quick,
    }
    print(json.dumps(result, indent=2))
    out = RESULTS.with_name("drain_lab_quick.json") if a.quick else RESULTS  # a smoke run keeps the figures
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if len(ok) != a.guests:
        print(
            "drain_lab: not every migration succeeded:",
            [(o.record.vm, o.reason.value, o.detail) for o in outs],
        )
        return 1
    return 0


def phase_seconds(events: list[tuple[float, Event]]) -> dict[str, dict[str, float]]:
    """Seconds each move spent in each journal state (queued, prechecking, ..., verifying)."""
    entered: dict[str, tuple[float, str]] = {}
    out: dict[str, dict[str, float]] = {}
    for at, e in events:
        if not isinstance(e, StateChanged):
            continue
        rec = e.record
        if rec.id in entered:
            since, state = entered[rec.id]
            phases = out.setdefault(rec.vm, {})
            phases[state] = round(phases.get(state, 0.0) + at - since, 2)
        entered[rec.id] = (at, rec.state.value)
    return out


if __name__ == "__main__":
    sys.exit(main())
