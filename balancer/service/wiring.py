"""Config → the values the packages below take. The only place that reads Config for them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from balancer.config import Config
from balancer.executor.facts import MigrationEndpoint
from balancer.metrics.source import HostEndpoint
from balancer.model import HostState, Move, Snapshot
from balancer.policy import PlanArgs
from balancer.policy.check import rule_checker
from balancer.reasons import Reason


def endpoints(cfg: Config) -> list[HostEndpoint]:
    """Collection endpoints, with the capacity overrides of config.yaml in base units."""
    out = []
    for h in cfg.hosts:
        cap = h.capacity
        out.append(
            HostEndpoint(
                name=h.name,
                uri=h.uri,
                migration_uri=h.migration_uri,
                labels=dict(h.labels),
                cpus=cap.cpus,
                memory_bytes=cap.memory_mib * 2**20 if cap.memory_mib is not None else None,
                disk_capacity_bytes=int(cap.disk_gib * 2**30) if cap.disk_gib is not None else None,
            )
        )
    return out


def metrics_config(cfg: Config) -> dict[str, Any]:
    """What ``Metrics(...)`` and ``Metrics.configure`` export of the config: the hosts, the thresholds
    the alert rules compare with and the collection interval."""
    t = cfg.thresholds
    return {
        "hosts": [h.name for h in cfg.hosts],
        "thresholds": {
            "cpu_high": t.cpu_high,
            "memory_high": t.memory_high,
            "disk_high": t.disk_high,
            "target_imbalance": t.target_imbalance,
        },
        "interval_seconds": cfg.collection.interval_seconds,
    }


def executor_endpoints(cfg: Config) -> dict[str, MigrationEndpoint]:
    """Executor endpoints: the control URI and the URI the source libvirtd dials (defaults to it)."""
    return {h.name: MigrationEndpoint(h.name, h.uri, h.migration_uri or h.uri) for h in cfg.hosts}


def plan_args(cfg: Config) -> PlanArgs:
    return PlanArgs(
        thresholds=cfg.thresholds,
        policy=cfg.policy,
        rules=cfg.rules,
        bandwidth_mib_s=cfg.limits.bandwidth_mib_s,
    )


def with_host_states(snap: Snapshot, draining: set[str], maintenance: set[str]) -> Snapshot:
    """Mark hosts with an open drain DRAINING and excluded ones MAINTENANCE (a down host stays DOWN).

    This is how a drain request "marks the host so nothing new is placed there": the planner never
    targets a host that is not UP.
    """
    hosts = []
    for h in snap.hosts:
        if h.state == HostState.DOWN:
            hosts.append(h)
        elif h.name in draining:
            hosts.append(replace(h, state=HostState.DRAINING))
        elif h.name in maintenance:
            hosts.append(replace(h, state=HostState.MAINTENANCE))
        else:
            hosts.append(h)
    return replace(snap, hosts=tuple(hosts))


def drain_bandwidth(cfg: Config) -> float:
    """Bytes/s the limits allow out of one draining host (the drain ETA's rate)."""
    lim = cfg.limits
    return float(min(lim.per_source * lim.bandwidth_mib_s, lim.host_bandwidth_mib_s) * 2**20)


def rule_check(cfg: Config) -> Callable[[Move, Snapshot], Reason | None]:
    """The executor's re-check of placement rules at move start (policy/check.py owns the semantics)."""
    return rule_checker(cfg.rules)
