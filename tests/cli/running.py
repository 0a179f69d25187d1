"""A real `balancer run` for CLI tests: `serve()` in a thread on libvirt test-driver hosts and a SQLite
store, with a write token; the CLI finds it through the config's api.listen."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from balancer.config import parse
from balancer.daemon import serve
from tests.api.harness import free_port
from tests.service.conftest import driver_hosts
from tests.waiting import wait_for

TOKEN = "cli-test-token-0123456789"


def config(tmp_path: Path, **extra: Any) -> Path:
    """config.yaml for a service on the three test-driver hosts (a is hot with 3 usable cores)."""
    data: dict[str, Any] = {
        "hosts": driver_hosts(a={"cpus": 3}),
        "store": {"url": f"sqlite:///{tmp_path / 'j.db'}"},
        "collection": {"interval_seconds": 1, "window": 1},
        "thresholds": {"hold_ticks": 1},
        "api": {"listen": f"127.0.0.1:{free_port()}", "tokens": [{"name": "ops", "token": TOKEN}]},
        # a lease longer than the 1 s default: on a loaded CI machine a 1 s term can lapse between two
        # renewals, and the new term then ends the CLI's queued move (leader_changed) before it starts
        "service": {"shutdown_grace_seconds": 0, "lease_seconds": 30},
    }
    data.update(extra)
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@contextmanager
def service(cfg_path: Path, ticks: int = 2) -> Iterator[str]:
    """`balancer run` in a thread on this config; yields its URL once it leads and has ticked."""
    cfg = parse(yaml.safe_load(cfg_path.read_text()))
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(cfg,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    url = f"http://{cfg.api.listen}"

    def ready() -> bool:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).json().get("leader") is not True:
                return False
            text = httpx.get(f"{url}/metrics", timeout=2).text
        except (httpx.TransportError, ValueError):
            return False
        ok = [ln for ln in text.splitlines() if ln.startswith('balancer_ticks_total{result="ok"}')]
        return bool(ok) and float(ok[0].rsplit(" ", 1)[1]) >= ticks

    try:
        wait_for("the service to lead and tick", ready, timeout=60)
        yield url
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the service did not stop"
