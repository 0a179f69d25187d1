"""Every ``balancer_*`` Prometheus metric, defined once, here.

Two kinds:

* events (counters, histograms) are updated as things happen, by the service (``plan_made`` and
  the counters themselves, e.g. ``metrics.migrations_finished.labels(result, reason).inc()``);
  known label values are created at zero up front, so ``increase()`` sees a first event;
* state (per-host load, host state, drains, queue depth, leader, ...) is rebuilt from the latest
  values at scrape time by :class:`StateCollector`, so a host or drain that went away disappears
  from /metrics instead of freezing at its last value.

Labels are low-cardinality: ``host`` (bounded by the config), ``reason``/``result``/``kind`` (the
stable codes of balancer.reasons), ``resource`` (cpu, memory, combined), ``priority``. No per-VM label.
The registry is passed in (tests use a fresh ``CollectorRegistry``).

Besides: the config values the alert rules compare with (``balancer_config_*``, so the rules hold
no copies of config.yaml), the process's own metrics (``process_*``, ``python_info``), and no
``<name>_created`` series (nothing uses them; they double the counters' series).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from balancer import __version__
from balancer.errors import CollectError
from balancer.model import HostState, Plan, Snapshot

_DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600, float("inf"))
_DOWNTIME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, float("inf"))
_FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))


@dataclass
class DrainGauge:
    """What /metrics shows for one draining host."""

    vms_remaining: int
    bytes_remaining: int
    eta_seconds: float | None
    blocked_vms: int
    deadline: float | None = None


@dataclass
class ClusterState:
    """The latest values StateCollector exposes; replaced as a whole by the service under a lock."""

    snapshot: Snapshot | None = None
    load: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # host -> resource -> ratio
    collection_seconds: Mapping[str, float] = field(default_factory=dict)  # host -> seconds
    plan: Plan | None = None
    drains: Mapping[str, DrainGauge] = field(default_factory=dict)
    queue_depth: Mapping[str, int] = field(default_factory=dict)  # priority name -> moves waiting
    in_flight: int = 0
    host_bandwidth: Mapping[str, float] = field(default_factory=dict)  # host -> bytes/s now
    oldest_in_flight_started: float | None = None  # epoch seconds the oldest running migration started
    leader: bool = False
    automation: str = "off"


@dataclass(frozen=True)
class _Pace:
    """A draining host at the last drains update, and how many updates in a row saw no progress."""

    vms: int
    bytes: int
    still: int = 0


class StateCollector(Collector):
    """Builds the state gauges from the latest ClusterState at every scrape.

    The service updates ``drains`` once per tick; each update also counts, per draining host, the
    ticks in a row without progress: its VMs and bytes left did not fall and no migration traffic
    flowed in or out of it (``balancer_drain_ticks_without_progress``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = ClusterState()
        self._pace: dict[str, _Pace] = {}

    def update(self, **changes: object) -> None:
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self._state, key):
                    raise AttributeError(f"ClusterState has no field {key!r}")
                setattr(self._state, key, value)
            if "drains" in changes:
                self._pace = _paces(self._pace, self._state.drains, self._state.host_bandwidth)

    @property
    def state(self) -> ClusterState:
        with self._lock:
            return self._state

    def collect(self) -> Iterator[Metric]:
        s = self.state
        load = GaugeMetricFamily(
            "balancer_host_load_ratio",
            "Smoothed demand / usable capacity per host and resource.",
            labels=["host", "resource"],
        )
        for host, by_res in sorted(s.load.items()):
            for res, ratio in sorted(by_res.items()):
                load.add_metric([host, res], ratio)
        yield load

        vms = GaugeMetricFamily("balancer_host_vms", "VMs per host.", labels=["host"])
        state = GaugeMetricFamily(
            "balancer_host_state",
            "1 for the host's current state, 0 for the others.",
            labels=["host", "state"],
        )
        if s.snapshot is not None:
            counts: dict[str, int] = {h.name: 0 for h in s.snapshot.hosts}
            for v in s.snapshot.vms:
                counts[v.host] = counts.get(v.host, 0) + 1
            for h in s.snapshot.hosts:
                vms.add_metric([h.name], counts.get(h.name, 0))
                for st in HostState:
                    state.add_metric([h.name, st.value], 1.0 if h.state == st else 0.0)
        yield vms
        yield state

        dur = GaugeMetricFamily(
            "balancer_host_collection_duration_seconds",
            "Time the last poll of the host took.",
            labels=["host"],
        )
        for host, secs in sorted(s.collection_seconds.items()):
            dur.add_metric([host], secs)
        yield dur

        imb = GaugeMetricFamily(
            "balancer_imbalance",
            "Std-dev of normalised load across hosts as the last plan saw it (CPU with burst room).",
            labels=["resource"],
        )
        over = GaugeMetricFamily("balancer_overloaded_hosts", "Hosts above a high-water mark (last plan).")
        pbytes = GaugeMetricFamily("balancer_plan_predicted_bytes", "Bytes the last plan predicts to copy.")
        pmoves = GaugeMetricFamily(
            "balancer_plan_moves", "Moves in the last plan by reason.", labels=["reason"]
        )
        pskips = GaugeMetricFamily(
            "balancer_plan_skips", "Candidates the last plan skipped, by reason.", labels=["reason"]
        )
        if s.plan is not None:
            imb.add_metric(["combined"], s.plan.imbalance_before)
            for res, value in sorted(s.plan.resource_imbalance_before.items()):
                imb.add_metric([res], value)
            over.add_metric([], len(s.plan.overloaded_before))
            pbytes.add_metric([], s.plan.predicted_bytes)
            for reason, n in _count(m.reason.value for m in s.plan.moves).items():
                pmoves.add_metric([reason], n)
            for reason, n in _count(k.reason.value for k in s.plan.skips).items():
                pskips.add_metric([reason], n)
        yield imb
        yield over
        yield pbytes
        yield pmoves
        yield pskips

        families = {
            "vms": GaugeMetricFamily(
                "balancer_drain_vms_remaining", "VMs still on a draining host.", labels=["host"]
            ),
            "bytes": GaugeMetricFamily(
                "balancer_drain_bytes_remaining", "Bytes still to copy off a draining host.", labels=["host"]
            ),
            "eta": GaugeMetricFamily(
                "balancer_drain_eta_seconds", "Predicted seconds until the host is empty.", labels=["host"]
            ),
            "blocked": GaugeMetricFamily(
                "balancer_drain_blocked_vms", "VMs on a draining host with no possible move.", labels=["host"]
            ),
            "deadline": GaugeMetricFamily(
                "balancer_drain_deadline_timestamp_seconds", "When the drain should be done.", labels=["host"]
            ),
        }
        for host, d in sorted(s.drains.items()):
            families["vms"].add_metric([host], d.vms_remaining)
            families["bytes"].add_metric([host], d.bytes_remaining)
            if d.eta_seconds is not None:
                families["eta"].add_metric([host], d.eta_seconds)
            families["blocked"].add_metric([host], d.blocked_vms)
            if d.deadline is not None:
                families["deadline"].add_metric([host], d.deadline)
        yield from families.values()
        still = GaugeMetricFamily(
            "balancer_drain_ticks_without_progress",
            "Ticks in a row in which a drain moved nothing: VMs and bytes left did not fall, no traffic.",
            labels=["host"],
        )
        with self._lock:
            paces = dict(self._pace)
        for host, pace in sorted(paces.items()):
            still.add_metric([host], pace.still)
        yield still

        queue = GaugeMetricFamily(
            "balancer_migration_queue_depth", "Moves waiting for admission, by priority.", labels=["priority"]
        )
        for prio, n in sorted(s.queue_depth.items()):
            queue.add_metric([prio], n)
        yield queue
        yield GaugeMetricFamily("balancer_migrations_in_flight", "Migrations running now.", value=s.in_flight)
        bw = GaugeMetricFamily(
            "balancer_host_migration_bandwidth_bytes_per_second",
            "Migration traffic in or out of the host now.",
            labels=["host"],
        )
        for host, rate in sorted(s.host_bandwidth.items()):
            bw.add_metric([host], rate)
        yield bw
        yield GaugeMetricFamily(
            "balancer_leader", "1 when this instance is the leader.", value=float(s.leader)
        )
        level = GaugeMetricFamily(
            "balancer_automation_level", "1 for the configured automation level.", labels=["level"]
        )
        for name in ("off", "recommend", "auto"):
            level.add_metric([name], 1.0 if s.automation == name else 0.0)
        yield level


def _paces(
    before: Mapping[str, _Pace], drains: Mapping[str, DrainGauge], bandwidth: Mapping[str, float]
) -> dict[str, _Pace]:
    """The paces after one more drains update; hosts no longer draining are forgotten."""
    out: dict[str, _Pace] = {}
    for host, d in drains.items():
        last = before.get(host)
        moved = (
            last is None
            or d.vms_remaining == 0
            or d.vms_remaining < last.vms
            or d.bytes_remaining < last.bytes
            or bandwidth.get(host, 0.0) > 0
        )
        out[host] = _Pace(d.vms_remaining, d.bytes_remaining, 0 if moved or last is None else last.still + 1)
    return out


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


#: ``thresholds`` keys of :class:`Metrics` and the ``resource`` label each becomes.
HIGH_WATER = {"cpu_high": "cpu", "memory_high": "memory", "disk_high": "disk"}
THRESHOLD_KEYS = frozenset({*HIGH_WATER, "target_imbalance"})


class Metrics:
    """The event metrics plus the StateCollector, registered on ``registry``.

    ``hosts``: the configured hosts, whose collection-error series start at 0 (so the first
    failure is an increase). ``thresholds`` (keys ``cpu_high``, ``memory_high``, ``disk_high``,
    ``target_imbalance``: config.yaml's ``thresholds``) and ``interval_seconds``
    (``collection.interval_seconds``) are exported as ``balancer_config_*`` gauges for the alert
    rules; none is exported when not given. ``configure`` exports them again after a config reload.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        hosts: Iterable[str] = (),
        thresholds: Mapping[str, float] | None = None,
        interval_seconds: float | None = None,
    ) -> None:
        disable_created_metrics()  # process-wide in prometheus_client; this is the process's exporter
        self.registry = registry
        self.state = StateCollector()
        registry.register(self.state)
        self.control = ControlMetrics(registry)
        ProcessCollector(registry=registry)  # process_*: memory, CPU, start time, open fds
        PlatformCollector(registry=registry)  # python_info
        info = Gauge("balancer_build_info", "Build information.", ["version"], registry=registry)
        info.labels(__version__).set(1)
        self._gauges: dict[str, Gauge] = {}
        self._hosts: set[str] = set()
        self.collection_errors = Counter(
            "balancer_collection_errors_total",
            "Failed host polls by host and kind (connect, timeout, libvirt).",
            ["host", "kind"],
            registry=registry,
        )
        self.configure(hosts, thresholds or {}, interval_seconds)
        self.ticks = Counter(
            "balancer_ticks_total", "Ticks run, by result (ok, error).", ["result"], registry=registry
        )
        self.tick_duration = Histogram(
            "balancer_tick_duration_seconds",
            "Wall time of one tick.",
            buckets=_FAST_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "balancer_last_successful_tick_timestamp_seconds",
            "When the last tick completed without error.",
            registry=registry,
        )
        self.plan_duration = Histogram(
            "balancer_plan_duration_seconds",
            "Time the planner took.",
            buckets=_FAST_BUCKETS,
            registry=registry,
        )
        self.planned_moves = Counter(
            "balancer_planned_moves_total", "Moves planned, by reason.", ["reason"], registry=registry
        )
        self.skipped = Counter(
            "balancer_skipped_candidates_total",
            "Candidates skipped by the planner, by reason.",
            ["reason"],
            registry=registry,
        )
        self.migrations_started = Counter(
            "balancer_migrations_started_total",
            "Migrations started, by move reason.",
            ["reason"],
            registry=registry,
        )
        self.migrations_finished = Counter(
            "balancer_migrations_finished_total",
            "Migrations finished, by result (succeeded, failed, aborted, skipped, refused, needs_attention) "
            "and reason code.",
            ["result", "reason"],
            registry=registry,
        )
        self.copied_bytes = Counter(
            "balancer_migration_copied_bytes_total",
            "Bytes copied by migrations, by kind (disk, memory, backing).",
            ["kind"],
            registry=registry,
        )
        self.migration_duration = Histogram(
            "balancer_migration_duration_seconds",
            "Wall time of finished migrations.",
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.downtime = Histogram(
            "balancer_migration_downtime_seconds",
            "Guest downtime at switch-over.",
            buckets=_DOWNTIME_BUCKETS,
            registry=registry,
        )
        self.convergence_actions = Counter(
            "balancer_convergence_actions_total",
            "Actions taken on migrations that did not converge (raise_downtime, auto_converge, abort).",
            ["action"],
            registry=registry,
        )
        self.efficacy_error = Histogram(
            "balancer_move_prediction_error_ratio",
            "|observed - predicted| load of a move's source and target some minutes after it finished.",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, float("inf")),
            registry=registry,
        )
        self.moves_evaluated = Counter(
            "balancer_moves_evaluated_total",
            "Finished moves checked for efficacy, by whether they helped (true, false).",
            ["helped"],
            registry=registry,
        )
        self.api_requests = Counter(
            "balancer_api_requests_total",
            "HTTP API requests by method and status code.",
            ["method", "code"],
            registry=registry,
        )

    def configure(
        self,
        hosts: Iterable[str] = (),
        thresholds: Mapping[str, float] | None = None,
        interval_seconds: float | None = None,
    ) -> None:
        """Export the config the alert rules compare with, and start every configured host's error
        series at 0 (a host no longer configured loses its series); at start and after each reload."""
        thresholds = thresholds or {}
        unknown = set(thresholds) - THRESHOLD_KEYS
        if unknown:
            raise ValueError(f"unknown thresholds {sorted(unknown)}; known: {sorted(THRESHOLD_KEYS)}")
        hosts = set(hosts)
        for host in self._hosts - hosts:
            for kind in CollectError.KINDS:
                self.collection_errors.remove(host, kind)
        for host in hosts - self._hosts:
            for kind in CollectError.KINDS:
                self.collection_errors.labels(host, kind)
        self._hosts = hosts
        for key, res in HIGH_WATER.items():
            if key in thresholds:
                self._gauge(
                    "balancer_config_high_water_ratio",
                    "thresholds.<resource>_high: load above which a host is overloaded "
                    "(disk: a target's limit).",
                    ["resource"],
                ).labels(res).set(thresholds[key])
        if "target_imbalance" in thresholds:
            self._gauge(
                "balancer_config_target_imbalance",
                "thresholds.target_imbalance: balance moves stop at or below this imbalance.",
            ).set(thresholds["target_imbalance"])
        if interval_seconds is not None:
            self._gauge(
                "balancer_config_collection_interval_seconds",
                "collection.interval_seconds: seconds between ticks.",
            ).set(interval_seconds)

    def _gauge(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Gauge:
        """The config gauge ``name``, registered the first time it is exported."""
        if name not in self._gauges:
            self._gauges[name] = Gauge(name, documentation, list(labels), registry=self.registry)
        return self._gauges[name]

    def plan_made(self, plan: Plan, seconds: float) -> None:
        """Record a plan: its duration, moves and skips by reason; the state gauges follow on scrape."""
        self.plan_duration.observe(seconds)
        for m in plan.moves:
            self.planned_moves.labels(m.reason.value).inc()
        for s in plan.skips:
            self.skipped.labels(s.reason.value).inc()
        self.state.update(plan=plan)


class ControlMetrics(Collector):
    """The control plane: leadership, loop liveness and config reloads (issue 12).

    ``balancer_last_tick_age_seconds`` is computed at scrape time on the monotonic clock, so an alert
    on it fires for a loop that stopped whatever the host's wall clock does (a timestamp gauge compared
    with Prometheus's ``time()`` does not, across a clock step).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._last_tick: float | None = None  # monotonic
        registry.register(self)
        self.leader_changes = Counter(
            "balancer_leader_changes_total",
            "Leadership gained or lost by this instance (event: acquired, lost).",
            ["event"],
            registry=registry,
        )
        for event in ("acquired", "lost"):
            self.leader_changes.labels(event)
        self.reloads = Counter(
            "balancer_config_reloads_total",
            "Config reloads on SIGHUP, by result (ok, error).",
            ["result"],
            registry=registry,
        )
        for result in ("ok", "error"):
            self.reloads.labels(result)
        self.reload_ok = Gauge(
            "balancer_config_last_reload_successful",
            "1 if the last config reload (SIGHUP) was applied, 0 if it was refused (the old config runs).",
            registry=registry,
        )
        self.reload_ok.set(1)
        self.adopted = Counter(
            "balancer_migrations_adopted_total",
            "Unfinished migrations of an older leader term this leader took over, by state.",
            ["state"],
            registry=registry,
        )

    def term(self, epoch: int | None) -> None:
        with self._lock:
            self._epoch = epoch

    def ticked(self, monotonic_at: float) -> None:
        with self._lock:
            self._last_tick = monotonic_at

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            epoch, last = self._epoch, self._last_tick
        term = GaugeMetricFamily(
            "balancer_leader_epoch", "The leader term this instance holds (absent when it does not lead)."
        )
        if epoch is not None:
            term.add_metric([], epoch)
        yield term
        age = GaugeMetricFamily(
            "balancer_last_tick_age_seconds",
            "Seconds since the last tick completed (monotonic clock; absent before the first).",
        )
        if last is not None:
            age.add_metric([], max(0.0, time.monotonic() - last))
        yield age
