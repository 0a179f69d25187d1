"""SIGHUP: read the config file again; apply it if it is valid, else keep the running one.

A refused reload is logged with every problem (as ``config check`` would print them) and exported
(``balancer_config_reloads_total{result="error"}``, ``balancer_config_last_reload_successful 0``);
the service goes on with the config it had. Keys that need a restart (``api.listen``, ``store.url``)
refuse the reload too, naming the key, so an operator never believes a change took effect when it did
not. Everything else applies from the next tick: hosts (a new collector and connections when the list
changed; smoothing starts afresh), thresholds, policy, rules, limits and executor knobs (for moves
admitted from then on), automation, API tokens, logging, the interval and the lease length; the
``balancer_config_*`` gauges the alert rules compare with follow at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from balancer.api.auth import Tokens
from balancer.config import Config, load
from balancer.daemon.build import Running, lease_ttl
from balancer.daemon.loop import Loop
from balancer.errors import ConfigError
from balancer.executor.libvirt_hypervisor import libvirt_factory
from balancer.metrics.collector import Collector
from balancer.service import logs, wiring

log = logging.getLogger("balancer.daemon")
RESTART_ONLY = ("api.listen", "store.url")


@dataclass
class Reloader:
    """Applies a config file to a running instance on request (from the loop's thread)."""

    path: Path
    running: Running
    loop: Loop
    app_state: object  # the API app's ``state`` (its ``ctx`` and ``tokens``)
    log_format: str | None = None  # --log-format given on the command line wins over the file
    problems: list[str] = field(default_factory=list)

    def reload(self) -> bool:
        """Load, validate and apply ``path``; False (and the old config kept) when it is refused."""
        old = self.running.cfg
        try:
            new = load(self.path)
            fixed = [key for key in RESTART_ONLY if _get(old, key) != _get(new, key)]
            if fixed:
                raise ConfigError(
                    [
                        f"{key}: {_get(new, key)!r} differs from the running {_get(old, key)!r}; "
                        "this key needs a restart"
                        for key in fixed
                    ],
                    str(self.path),
                )
            tokens = Tokens(new.api)  # a token_file that cannot be read refuses the reload
        except ConfigError as exc:
            self.problems = exc.problems
            self.running.control.reloads.labels("error").inc()
            self.running.control.reload_ok.set(0)
            log.error("event=config_reload_refused path=%s problems=%r", self.path, "; ".join(exc.problems))
            return False
        self._apply(old, new, tokens)
        self.problems = []
        self.running.control.reloads.labels("ok").inc()
        self.running.control.reload_ok.set(1)
        log.info(
            "event=config_reloaded path=%s hosts=%d automation=%s", self.path, len(new.hosts), new.automation
        )
        return True

    def _apply(self, old: Config, new: Config, tokens: Tokens) -> None:
        service = self.running.service
        if new.hosts != old.hosts or new.collection != old.collection:
            previous = service.collector
            service.collector = Collector.for_endpoints(wiring.endpoints(new), new.collection)
            service.hypervisors = libvirt_factory(wiring.executor_endpoints(new))
            previous.close()
        service.reconfigure(new)
        self.running.metrics.configure(**wiring.metrics_config(new))  # what the alert rules compare with
        runner = service.current_runner()
        if runner is not None:
            runner.reconfigure(new.executor, new.limits, service.hypervisors, wiring.executor_endpoints(new))
        self.running.lease.ttl = lease_ttl(new)
        self.loop.interval = new.collection.interval_seconds
        self.loop.intake_seconds = new.service.intake_seconds
        ctx = getattr(self.app_state, "ctx", None)
        if ctx is not None:
            ctx.cfg = new
        self.app_state.tokens = tokens  # type: ignore[attr-defined]
        logs.setup(self.log_format or new.logging.format, new.logging.level)
        self.running.cfg = new


def _get(cfg: Config, dotted: str) -> object:
    value: object = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
