"""The parts of one ``balancer run`` instance, wired once: ``build(cfg) -> Running``."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from balancer.config import Config
from balancer.executor.libvirt_hypervisor import libvirt_factory
from balancer.executor.runner import Runner
from balancer.metrics.collector import Collector
from balancer.metrics.export import ControlMetrics, Metrics
from balancer.service import libvirt_process, wiring
from balancer.service.core import Service
from balancer.service.leadership import LeaseKeeper, holder_id
from balancer.store import Store


@dataclass
class Running:
    """The parts of a running service (tests drive ticks and inspect them directly)."""

    cfg: Config
    store: Store
    service: Service
    lease: LeaseKeeper
    metrics: Metrics
    control: ControlMetrics
    api_url: str

    @property
    def runner(self) -> Runner | None:
        """The Runner of the current leadership term (None while this instance does not lead)."""
        return self.service.current_runner()


def api_url(cfg: Config) -> str:
    host, _, port = cfg.api.listen.rpartition(":")
    return f"http://{host}:{port}"


def lease_ttl(cfg: Config) -> float:
    """``service.lease_seconds``, else one collection interval (a dead leader goes in < 2 ticks)."""
    return cfg.service.lease_seconds or max(1.0, cfg.collection.interval_seconds)


def build(cfg: Config) -> Running:
    """Open the store and connections and build the Service; no thread runs yet (the lease keeper
    starts in ``serve``, or when a test calls ``lease.start()``/``lease.renew()``)."""
    libvirt_process.prepare()
    store = Store.open(cfg.store.url)
    registry = CollectorRegistry()
    metrics = Metrics(registry, **wiring.metrics_config(cfg))
    control = metrics.control
    collector = Collector.for_endpoints(wiring.endpoints(cfg), cfg.collection)
    hypervisors = libvirt_factory(wiring.executor_endpoints(cfg))
    url = api_url(cfg)
    keeper = LeaseKeeper(store, holder_id(url), lease_ttl(cfg))
    service = Service(cfg, store, collector, metrics, hypervisors, keeper, control)
    keeper.on_change = service.leadership_changed
    return Running(cfg, store, service, keeper, metrics, control, url)
