"""`balancer run`: bind the API's port, open the store, lead or follow, loop until SIGTERM.

Start-up order makes a half-started instance impossible: the port is bound first and the store opened
next, each failure ending the process non-zero (exit 1) with one log line, before the lease is ever
tried, so an instance that cannot serve its API never leads headless. Then the API serves, the lease
keeper starts, and the loop runs ticks on the monotonic clock (loop.py). systemd hears ``READY=1``
once the API is up and the first tick ran (notify.py).

Signals: SIGHUP reloads the config (reload.py); SIGTERM or SIGINT stop scheduling, let the running
tick finish, end queued moves (``shutdown``), wait ``service.shutdown_grace_seconds`` for running
migrations, hand the lease over and leave what still runs to the next leader (PEER2PEER migrations
carry on in the source libvirtd). Nothing is aborted because the service stops, unless
``--abort-on-exit`` asks for it.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from pathlib import Path
from types import FrameType

import uvicorn

from balancer.api.app import ApiContext, create_app
from balancer.config import Config
from balancer.daemon.build import Running, build
from balancer.daemon.loop import Loop
from balancer.daemon.notify import notify
from balancer.daemon.reload import Reloader
from balancer.errors import ConfigError, StoreError
from balancer.exit_codes import EXIT_FAILED, EXIT_OK
from balancer.service import logs
from balancer.service.leadership import LeaderTerm

log = logging.getLogger("balancer.daemon")


def bind(listen: str) -> socket.socket:
    """The API's listening socket, bound now (OSError when the address is taken or not ours)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(
    cfg: Config,
    abort_on_exit: bool = False,
    stop: threading.Event | None = None,
    config_path: Path | None = None,
    log_format: str | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); returns the process exit code."""
    try:
        sock = bind(cfg.api.listen)
    except OSError as exc:
        log.error("event=start_failed step=bind listen=%s error=%r", cfg.api.listen, exc.strerror or str(exc))
        return EXIT_FAILED
    try:
        parts = build(cfg)
    except StoreError as exc:
        sock.close()
        log.error("event=start_failed step=store error=%r", str(exc))
        return EXIT_FAILED
    try:
        return _run(parts, sock, abort_on_exit, stop or threading.Event(), config_path, log_format)
    finally:
        sock.close()


def _run(
    parts: Running,
    sock: socket.socket,
    abort_on_exit: bool,
    stop: threading.Event,
    config_path: Path | None,
    log_format: str | None,
) -> int:
    cfg, service = parts.cfg, parts.service
    try:
        app = create_app(
            ApiContext(
                cfg=cfg,
                store=parts.store,
                control=service,
                registry=parts.metrics.registry,
                metrics=parts.metrics,
                clock=parts.store.now,
            )
        )
    except ConfigError as exc:  # a token_file that cannot be read
        log.error("event=start_failed step=api problems=%r", "; ".join(exc.problems))
        _close(parts)
        return EXIT_FAILED
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=logs.uvicorn_log_config(), log_level="warning", lifespan="off")
    )
    # uvicorn only captures signals on the main thread; in its own thread ours stay in charge.
    api_thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api", daemon=True)
    api_thread.start()

    reload_asked = threading.Event()
    ready = threading.Event()

    def on_tick(count: int) -> None:
        if count == 1 and server.started:
            ready.set()
            notify("READY=1")

    loop = Loop(service, cfg.collection.interval_seconds, cfg.service.intake_seconds, on_tick=on_tick)
    reloader = Reloader(config_path, parts, loop, app.state, log_format) if config_path else None

    def between() -> None:
        if reload_asked.is_set():
            reload_asked.clear()
            notify("RELOADING=1")
            if reloader is not None:
                reloader.reload()
            notify("READY=1")
        if not ready.is_set() and loop.ticks >= 1 and server.started:
            ready.set()
            notify("READY=1")

    loop.between = between

    def on_leadership(term: LeaderTerm | None) -> None:
        service.leadership_changed(term)
        if term is not None:
            loop.tick_now()

    parts.lease.on_change = on_leadership

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.info("event=signal signal=%s", name)
        if signum == signal.SIGHUP:
            if reloader is None:
                log.warning("event=config_reload_refused reason='no config file to reload'")
            reload_asked.set()
        else:
            stop.set()
        loop.wake()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, on_signal)

    parts.lease.start()
    loop_thread = threading.Thread(target=loop.run, args=(stop,), name="loop", daemon=True)
    loop_thread.start()
    log.info(
        "event=started automation=%s hosts=%d interval=%.1f api=%s store=%s holder=%s",
        cfg.automation,
        len(cfg.hosts),
        cfg.collection.interval_seconds,
        parts.api_url,
        parts.store.dialect,
        parts.lease.holder,
    )
    stop.wait()

    notify("STOPPING=1")
    grace = parts.cfg.service.shutdown_grace_seconds
    log.info("event=stopping grace_seconds=%.0f abort=%s", grace, abort_on_exit)
    loop.wake()
    loop_thread.join()  # the running tick finishes; no new one starts
    left = service.shutdown(grace, abort=abort_on_exit)
    for rec in left:
        log.warning("event=left_to_next_leader id=%s vm=%s state=%s", rec.id, rec.vm, rec.state.value)
    parts.lease.stop()
    server.should_exit = True
    api_thread.join(timeout=10)
    _close(parts)
    log.info("event=stopped")
    return EXIT_OK


def _close(parts: Running) -> None:
    parts.service.collector.close()
    parts.store.close()
