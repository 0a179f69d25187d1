"""`balancer run`: wire the parts, start the API and the APScheduler loop, stop cleanly on SIGTERM.

The tick job runs at ``collection.interval_seconds`` with ``max_instances=1`` (never two ticks at
once) and ``coalesce=True`` (a late tick is coalesced, not queued). On SIGTERM/SIGINT: stop
scheduling, let the running tick finish, stop admitting moves, wait up to
``service.shutdown_grace_seconds`` for running migrations, then leave them to recovery at the next
start (PEER2PEER migrations carry on in the source libvirtd). Nothing is aborted because the
service stops, unless ``--abort-on-exit`` asks for it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from balancer.config import Config
from balancer.executor.hypervisor import libvirt_factory
from balancer.executor.recovery import recover
from balancer.executor.runner import Runner
from balancer.metrics.collector import Collector
from balancer.metrics.export import Metrics
from balancer.service import wiring
from balancer.service.core import Service
from balancer.service.efficacy import Efficacy
from balancer.service.events import ServiceSink
from balancer.service.ha import LeaseKeeper, holder_id
from balancer.service.libvirt_events import ensure_event_loop
from balancer.store import Store

log = logging.getLogger("balancer.service")


@dataclass
class Running:
    """The parts of a running service (tests drive ticks and inspect them directly)."""

    cfg: Config
    store: Store
    service: Service
    runner: Runner
    lease: LeaseKeeper
    metrics: Metrics
    api_url: str


def api_url(cfg: Config) -> str:
    host, _, port = cfg.api.listen.rpartition(":")
    return f"http://{host}:{port}"


def build(cfg: Config) -> Running:
    """Open the store and connections and build the Service (no thread started yet except the runner's)."""
    ensure_event_loop()
    store = Store.open(cfg.store.url)
    registry = CollectorRegistry()
    t = cfg.thresholds
    metrics = Metrics(
        registry,
        hosts=[h.name for h in cfg.hosts],
        thresholds={
            "cpu_high": t.cpu_high,
            "memory_high": t.memory_high,
            "target_imbalance": t.target_imbalance,
        },
        interval_seconds=cfg.collection.interval_seconds,
    )
    collector = Collector.for_endpoints(wiring.endpoints(cfg), cfg.collection)
    exec_endpoints = wiring.executor_endpoints(cfg)
    hypervisors = libvirt_factory(exec_endpoints)
    efficacy = Efficacy(metrics, cfg.service.efficacy_minutes * 60)
    moves: dict = {}
    holder: list[Service] = []
    sink = ServiceSink(
        metrics, efficacy, moves, on_finished=lambda out: holder[0].finished(out) if holder else None
    )
    runner = Runner(
        cfg.executor,
        cfg.limits,
        hypervisors,
        store,
        exec_endpoints,
        sink,
        snapshot=lambda: holder[0].live.snapshot if holder else None,
        rule_check=wiring.rule_check(cfg),
    )
    # ttl = one interval: renewed every ttl/3, so a dead leader is replaced within 4/3 of a tick.
    ttl = cfg.service.lease_seconds or max(1.0, cfg.collection.interval_seconds)
    url = api_url(cfg)
    lease = LeaseKeeper(store, holder_id(url), ttl)

    def on_leadership() -> None:
        done = recover(store, hypervisors, cfg.executor, sink)
        for rec in done:
            log.info(
                "event=recovered id=%s vm=%s state=%s detail=%r", rec.id, rec.vm, rec.state.value, rec.detail
            )

    service = Service(
        cfg,
        store,
        collector,
        runner,
        metrics,
        efficacy,
        is_leader=lease.is_leader,
        on_leadership=on_leadership,
    )
    service.live.moves = moves
    holder.append(service)
    return Running(cfg, store, service, runner, lease, metrics, url)


def serve(cfg: Config, abort_on_exit: bool = False, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); returns the process exit code."""
    from balancer.api.app import ApiContext, create_app  # the API layer sits above the service

    parts = build(cfg)
    stop = stop or threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("event=signal signal=%s", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    ctx = ApiContext(
        cfg=cfg,
        store=parts.store,
        live=parts.service.live,
        registry=parts.metrics.registry,
        metrics=parts.metrics,
        abort=parts.runner.abort,
    )
    host, _, port = cfg.api.listen.rpartition(":")
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host=host, port=int(port), log_level="warning"))
    # uvicorn only captures signals on the main thread; in its own thread ours stay in charge.
    api_thread = threading.Thread(target=server.run, name="api", daemon=True)
    api_thread.start()

    parts.lease.start()
    scheduler = BackgroundScheduler(timezone="UTC")
    interval = cfg.collection.interval_seconds
    scheduler.add_job(
        parts.service.tick,
        "interval",
        seconds=interval,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval)),
        next_run_time=_now_dt(),
        id="tick",
    )
    scheduler.start()
    log.info(
        "event=started automation=%s hosts=%d interval=%.1f api=%s store=%s holder=%s",
        cfg.automation,
        len(cfg.hosts),
        interval,
        parts.api_url,
        parts.store.dialect,
        parts.lease.holder,
    )
    stop.wait()

    log.info("event=stopping grace_seconds=%.0f abort=%s", cfg.service.shutdown_grace_seconds, abort_on_exit)
    scheduler.shutdown(wait=True)  # the running tick finishes; no new one starts
    left = parts.runner.shutdown(cfg.service.shutdown_grace_seconds, abort=abort_on_exit)
    for rec in left:
        log.warning("event=left_to_recovery id=%s vm=%s state=%s", rec.id, rec.vm, rec.state.value)
    parts.lease.stop()
    server.should_exit = True
    api_thread.join(timeout=10)
    parts.service.collector.close()
    parts.store.close()
    log.info("event=stopped")
    return 0


def _now_dt():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time.time(), tz=UTC)
