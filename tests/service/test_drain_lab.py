"""A drain end to end in the lab: requested over the HTTP API of a running service, worked on tick after
tick with real block migrations, surviving a restart of the service mid-drain; then a drain blocked by
a pinned VM reports its blocker and powers nothing off."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from balancer.config import Config, parse
from balancer.daemon import serve
from balancer.lab import Lab
from tests.prom import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
TOKEN = "lab-test-token-0123456789"
QUIET = {"dirty_mib_s": 0, "disk_mib_s": 0, "overlay_mib": 16, "memory_mib": 96}


def lab_config(lab: Lab, tmp_path: Path, **extra: Any) -> Config:
    data: dict[str, Any] = yaml.safe_load(lab.config_yaml(cpus=1.0, memory_mib=2048))
    data.update(
        {
            "automation": "recommend",  # drains only: their moves start at once, nothing else moves
            "collection": {"interval_seconds": 2, "window": 1, "host_timeout_seconds": 5},
            "limits": {"bandwidth_mib_s": 200, "host_bandwidth_mib_s": 400},
            "executor": {"memory_headroom_mib": 32, "backing_verify": "size"},
            "store": {"url": f"sqlite:///{tmp_path}/balancer.db"},
            "api": {"listen": f"127.0.0.1:{free_port()}", "tokens": [{"name": "ops", "token": TOKEN}]},
            "service": {"shutdown_grace_seconds": 0},
        }
    )
    data.update(extra)
    return parse(data)


@contextmanager
def running(cfg: Config) -> Iterator[httpx.Client]:
    """`balancer run` in a thread (as the CLI runs it), its API client, and a clean stop."""
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(cfg,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    client = httpx.Client(
        base_url=f"http://{cfg.api.listen}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    try:
        wait_for("the API", lambda: _get(client, "/healthz"), timeout=60)
        yield client
    finally:
        stop.set()
        thread.join(timeout=120)
        client.close()
        assert not thread.is_alive(), "the service did not stop"


def _get(client: httpx.Client, path: str) -> httpx.Response | None:
    try:
        r = client.get(path)
    except httpx.TransportError:
        return None
    return r if r.status_code == 200 else None


def drain_state(client: httpx.Client, host: str) -> dict[str, Any]:
    r = client.get(f"/v1/drains/{host}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def vms_on(lab: Lab, host: str) -> set[str]:
    return {d.name for d in lab.host_domains(host)}


def test_drain_over_the_api_survives_a_service_restart_and_empties_the_host(
    lab: Lab, lab_guest, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    guests = [lab_guest(f"drain-{i}", "h1", **QUIET) for i in range(2)]
    names = {g.name for g in guests}
    beats = {g.name: lab.wait_heartbeat("h1", g.name) for g in guests}
    cfg = lab_config(lab, tmp_path)
    with running(cfg) as api:
        r = api.post("/v1/drains", json={"host": "h1", "note": "test maintenance"})
        assert r.status_code == 201, r.text
        # Restart the service while the drain is in flight (a migration journaled, not finished).
        wait_for(
            "a migration off h1 in flight",
            lambda: any(m["state"] not in ("queued",) for m in api.get("/v1/migrations").json()),
            timeout=120,
        )
    with running(cfg) as api:
        done = wait_for(
            "the drain to finish", lambda: (d := drain_state(api, "h1"))["state"] == "done" and d, timeout=300
        )
        assert done["progress"]["vms_remaining"] == 0
        migrations = api.get("/v1/migrations").json()
        # The emptied host stays in maintenance (nothing placed there) until an operator undrains it.
        wait_for(
            "h1 held in maintenance", lambda: api.get("/v1/hosts/h1").json()["state"] == "maintenance", 30
        )
        r = api.delete("/v1/drains/h1")
        assert (r.status_code, r.json()["state"]) == (200, "released")
        wait_for("h1 back in service", lambda: api.get("/v1/hosts/h1").json()["state"] == "up", 30)
    assert not vms_on(lab, "h1") & names
    for g in guests:
        where = [h.name for h in lab.hosts if g.name in vms_on(lab, h.name)]
        assert len(where) == 1 and where[0] != "h1", (g.name, where)
        lab.wait_live_arrival(where[0], g.name, after=beats[g.name], timeout=60)
    succeeded = [m for m in migrations if m["state"] == "succeeded"]
    assert {m["vm"] for m in succeeded} == names
    assert all(m["source"] == "h1" for m in succeeded)


def test_drain_blocked_by_a_pinned_vm_reports_the_blocker(lab: Lab, lab_guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pinned = lab_guest("pinned-1", "h3", **QUIET)
    cfg = lab_config(lab, tmp_path, rules={"pins": [{"vm": pinned.name, "hosts": ["h3"]}]})
    with running(cfg) as api:
        assert api.post("/v1/drains", json={"host": "h3"}).status_code == 201
        blocked = wait_for(
            "the drain to report its blocker",
            lambda: (d := drain_state(api, "h3"))["blocked"] and d,
            timeout=120,
        )
        blockers = blocked["progress"]["blockers"]
        assert [(b["vm"], b["reason"]) for b in blockers] == [(pinned.name, "pinned")]
        assert blocked["state"] == "open"
        r = api.delete("/v1/drains/h3")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert pinned.name in vms_on(lab, "h3")  # never powered off, never moved
    assert lab.heartbeat("h3", pinned.name) is not None
