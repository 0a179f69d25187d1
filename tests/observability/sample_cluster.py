"""A three-host cluster's worth of balancer metrics, so that every ``balancer_*`` family has samples.

``populate(metrics, now, busy=...)`` fills a fresh :class:`balancer.metrics.export.Metrics`:

* ``busy=True``: compute-1 is hot, compute-3 drains with one VM blocked, a migration runs and two wait,
  some migrations failed: the dashboard has something to show in every panel;
* ``busy=False``: the same cluster at rest (one drain making progress, nothing hot, no failures): no alert
  in deploy/prometheus/alerts.yml fires on it, even with every ``for:`` shortened to seconds.

``advance(metrics, i)`` moves the counters a little (a tick, a started and a finished migration) and
compute-2's CPU load, for previews that should show rates; nothing else changes.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from balancer.metrics.args import default_args
from balancer.metrics.export import DrainGauge, Metrics
from balancer.model import (
    VM,
    BackingFile,
    Disk,
    Host,
    HostState,
    LoadChange,
    Move,
    MoveCost,
    Plan,
    Skip,
    Snapshot,
)
from balancer.policy.args import ThresholdArgs
from balancer.reasons import Reason

GIB = 1024**3
MIB = 1024**2
HOSTS = ("compute-1", "compute-2", "compute-3")
DRAINING = "compute-3"


def _vm(name: str, host: str, cores: float, mem_gib: int, disk_gib: float) -> VM:
    base = BackingFile(
        path="/var/lib/libvirt/images/_base/debian-12.qcow2",
        format="qcow2",
        virtual_bytes=20 * GIB,
        allocated_bytes=2 * GIB,
    )
    disk = Disk(
        target="vda",
        path=f"/var/lib/libvirt/images/{name}.qcow2",
        format="qcow2",
        virtual_bytes=20 * GIB,
        allocated_bytes=int(disk_gib * GIB),
        backing=(base,),
    )
    return VM(
        name=name,
        uuid=f"00000000-0000-4000-8000-{abs(hash(name)) % 10**12:012d}",
        host=host,
        state="running",
        vcpus=4,
        memory_bytes=mem_gib * GIB,
        cpu_cores=cores,
        disks=(disk,),
    )


def snapshot(now: float, down: str | None = None) -> Snapshot:
    """compute-1..3 with 6 VMs; compute-3 is draining; ``down`` names a host marked down."""
    hosts = tuple(
        Host(
            name=name,
            state=(
                HostState.DOWN if name == down else HostState.DRAINING if name == DRAINING else HostState.UP
            ),
            cpus=16.0,
            memory_bytes=64 * GIB,
            disk_capacity_bytes=1024 * GIB,
            disk_free_bytes=700 * GIB,
            hypervisor="QEMU",
            error="timeout: libvirtd did not answer within 5 s" if name == down else None,
        )
        for name in HOSTS
    )
    vms = (
        _vm("web-1", "compute-1", 6.0, 16, 8),
        _vm("db-1", "compute-1", 5.5, 24, 40),
        _vm("web-2", "compute-2", 3.0, 8, 6),
        _vm("cache-1", "compute-2", 2.0, 16, 3),
        _vm("batch-1", DRAINING, 1.5, 8, 12),
        _vm("legacy-1", DRAINING, 1.0, 32, 60),
    )
    return Snapshot(taken_at=now, hosts=hosts, vms=vms)


def plan(now: float, busy: bool) -> Plan:
    """Drain batch-1 off compute-3 (and, when busy, relieve compute-1); skips with their reasons."""
    drain = Move(
        vm="batch-1",
        source=DRAINING,
        target="compute-2",
        reason=Reason.DRAIN,
        cost=MoveCost(disk_bytes=12 * GIB, backing_bytes=0, memory_bytes=10 * GIB, seconds=230.0),
        source_load=LoadChange(before={"cpu": 0.16, "memory": 0.63}, after={"cpu": 0.06, "memory": 0.5}),
        target_load=LoadChange(before={"cpu": 0.31, "memory": 0.38}, after={"cpu": 0.41, "memory": 0.5}),
    )
    moves: tuple[Move, ...] = (drain,)
    skips: tuple[Skip, ...] = (Skip("vm", "web-2", Reason.COOLDOWN, "moved 12 min ago"),)
    if busy:
        hot = Move(
            vm="web-1",
            source="compute-1",
            target="compute-2",
            reason=Reason.HOTSPOT,
            cost=MoveCost(disk_bytes=8 * GIB, backing_bytes=2 * GIB, memory_bytes=20 * GIB, seconds=310.0),
        )
        moves += (hot,)
        skips += (Skip("vm", "legacy-1", Reason.NO_FIT, "needs 32 GiB; largest free is 20 GiB"),)
    return Plan(
        created_at=now,
        moves=moves,
        skips=skips,
        imbalance_before=0.19 if busy else 0.04,
        imbalance_after=0.07 if busy else 0.03,
        resource_imbalance_before={"cpu": 0.24, "memory": 0.11} if busy else {"cpu": 0.04, "memory": 0.03},
        resource_imbalance_after={"cpu": 0.08, "memory": 0.06} if busy else {"cpu": 0.03, "memory": 0.03},
        overloaded_before=("compute-1",) if busy else (),
    )


def load(busy: bool) -> dict[str, dict[str, float]]:
    """host -> resource -> smoothed demand / usable capacity."""
    return {
        "compute-1": {"cpu": 0.92 if busy else 0.61, "memory": 0.69, "disk": 0.31},
        "compute-2": {"cpu": 0.31, "memory": 0.38, "disk": 0.22},
        "compute-3": {"cpu": 0.16, "memory": 0.63, "disk": 0.12},
    }


def drain(now: float, busy: bool, blocked: int | None = None, deadline: float | None = None) -> DrainGauge:
    return DrainGauge(
        vms_remaining=2,
        bytes_remaining=72 * GIB,
        eta_seconds=1260.0,
        blocked_vms=(1 if busy else 0) if blocked is None else blocked,
        deadline=now + 4 * 3600 if deadline is None else deadline,
    )


def new_metrics() -> Metrics:
    """Metrics as the service builds them: its hosts, config.yaml's default thresholds and interval."""
    t = ThresholdArgs()
    thresholds = {
        "cpu_high": t.cpu_high,
        "memory_high": t.memory_high,
        "disk_high": t.disk_high,
        "target_imbalance": t.target_imbalance,
    }
    interval = default_args().interval_seconds
    return Metrics(CollectorRegistry(), hosts=HOSTS, thresholds=thresholds, interval_seconds=interval)


def populate(metrics: Metrics, now: float, busy: bool = True) -> None:
    """Give every balancer_* family at least one sample; see the module docstring for the two states."""
    metrics.state.update(
        snapshot=snapshot(now),
        load=load(busy),
        collection_seconds={"compute-1": 0.21, "compute-2": 0.18, "compute-3": 0.35},
        drains={DRAINING: drain(now, busy)},
        queue_depth={"drain": 1, "hotspot": 1} if busy else {"drain": 0},
        in_flight=1 if busy else 0,
        host_bandwidth={DRAINING: 100.0 * MIB, "compute-2": 100.0 * MIB} if busy else {DRAINING: 0.0},
        leader=True,
        automation="auto",
    )
    metrics.plan_made(plan(now, busy), seconds=0.034)
    metrics.control.term(3)
    metrics.control.ticked(time.monotonic())
    metrics.control.leader_changes.labels("acquired").inc()
    metrics.control.adopted.labels("migrating").inc()

    metrics.collection_errors.labels("compute-3", "timeout").inc(2)
    metrics.ticks.labels("ok").inc(40)
    metrics.ticks.labels("error").inc(1)
    for seconds in (0.4, 0.6, 0.5, 1.2):
        metrics.tick_duration.observe(seconds)
    metrics.last_success.set(now)
    metrics.migrations_started.labels("drain").inc(4)
    metrics.migrations_started.labels("hotspot").inc(1)
    metrics.migrations_finished.labels("succeeded", "succeeded").inc(9)
    metrics.migrations_finished.labels("failed", "not_converging").inc(1)
    if busy:
        metrics.migrations_finished.labels("aborted", "no_progress").inc(1)
    for kind, gib in (("disk", 46), ("memory", 70), ("backing", 4)):
        metrics.copied_bytes.labels(kind).inc(gib * GIB)
    for seconds in (95, 140, 230, 410):
        metrics.migration_duration.observe(seconds)
    for seconds in (0.03, 0.08, 0.2):
        metrics.downtime.observe(seconds)
    metrics.convergence_actions.labels("raise_downtime").inc(2)
    for error in (0.02, 0.04, 0.11):
        metrics.efficacy_error.observe(error)
    metrics.moves_evaluated.labels("true").inc(7)
    metrics.moves_evaluated.labels("false").inc(1)
    metrics.api_requests.labels("GET", "200").inc(25)
    metrics.api_requests.labels("POST", "201").inc(2)


def advance(metrics: Metrics, i: int) -> None:
    """One more tick's worth of events: the counters move, so rate() panels have a shape."""
    metrics.ticks.labels("ok").inc()
    metrics.tick_duration.observe(0.3 + (i % 5) * 0.1)
    metrics.migrations_started.labels("drain" if i % 2 else "hotspot").inc()
    metrics.migrations_finished.labels("succeeded", "succeeded").inc()
    metrics.copied_bytes.labels("disk").inc((2 + i % 3) * GIB)
    metrics.copied_bytes.labels("memory").inc(GIB)
    metrics.migration_duration.observe(100 + (i % 4) * 60)
    metrics.api_requests.labels("GET", "200").inc(3)
    state_load = dict(metrics.state.state.load)
    state_load["compute-2"] = {**state_load.get("compute-2", {}), "cpu": 0.31 + (i % 10) * 0.05}
    metrics.state.update(load=state_load)
