"""Log schema of a real `balancer run --log-format json` on test-driver hosts: every line is one JSON
object, and the fields of each event have the types of the values logged (ints, floats, bools, null)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.prom import free_port
from tests.service.conftest import driver_hosts, ok_ticks
from tests.waiting import wait_for

pytestmark = pytest.mark.slow
TOKEN = "log-schema-token-0123456789"


@dataclass
class Run:
    api: str
    log: Path
    proc: subprocess.Popen[bytes]

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0


def start(tmp_path: Path) -> Run:
    listen = f"127.0.0.1:{free_port()}"
    cfg = {
        # host a is declared too small, so the leader plans and starts moves (the test driver cannot
        # migrate: they fail in pre-checks, which logs migration_state and migration_finished lines)
        "hosts": driver_hosts(a={"cpus": 3}),
        "automation": "auto",
        "store": {"url": f"sqlite:///{tmp_path}/balancer.db"},
        "collection": {"interval_seconds": 1, "window": 1},
        "thresholds": {"hold_ticks": 1},
        "api": {"listen": listen, "tokens": [{"name": "ops", "token": TOKEN}]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "balancer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "balancer", "run", "-c", str(path), "--log-format", "json"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = f"http://{listen}"
    wait_for("three good ticks", lambda: ok_ticks(api) >= 3 or proc.poll() is not None, timeout=60)
    assert proc.poll() is None, log.read_text()
    return Run(api, log, proc)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, object]]]:
    run = start(tmp_path_factory.mktemp("log-schema"))
    try:
        r = httpx.post(
            f"{run.api}/v1/drains",
            json={"host": "c", "note": "log schema"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        wait_for("a finished migration", lambda: "migration_finished" in run.log.read_text(), timeout=60)
    finally:
        run.stop()
    parsed = []
    for number, line in enumerate(run.lines(), 1):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"line {number} is not JSON: {line!r}")
        assert isinstance(data, dict), line
        parsed.append(data)
    yield parsed


def of(events: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    found = [e for e in events if e.get("event") == name]
    assert found, f"no event={name} among {sorted({str(e.get('event')) for e in events})}"
    return found


def test_every_line_has_the_envelope(events: list[dict[str, object]]) -> None:
    for e in events:
        assert isinstance(e["ts"], str) and str(e["ts"]).endswith("Z"), e
        assert e["level"] in ("debug", "info", "warning", "error", "critical"), e
        assert isinstance(e["logger"], str), e
        assert "event" in e or "message" in e, e


def test_numbers_are_numbers(events: list[dict[str, object]]) -> None:
    (started,) = of(events, "started")
    assert started["hosts"] == 3
    assert started["interval"] == 1.0 and isinstance(started["interval"], float)
    assert all(type(e["ttl"]) is float for e in of(events, "leader_acquired"))
    for e in of(events, "move_planned"):
        assert type(e["bytes"]) is int and e["bytes"] > 0, e
    for e in of(events, "move_submitted"):
        assert type(e["plan"]) is int, e
    for e in of(events, "migration_finished"):
        assert type(e["bytes"]) is int, e
    (stopping,) = of(events, "stopping")
    assert type(stopping["grace_seconds"]) is float


def test_none_is_null_and_bools_are_bools(events: list[dict[str, object]]) -> None:
    queued = [e for e in of(events, "migration_state") if e["state"] == "queued"]
    assert queued and all(e["previous"] is None for e in queued)
    for e in of(events, "migration_finished"):
        assert e["error"] is None or isinstance(e["error"], str), e
    (drain,) = of(events, "api_drain_create")
    assert (drain["created"], type(drain["id"]), drain["actor"]) == (True, int, "ops")
    (stopping,) = of(events, "stopping")
    assert stopping["abort"] is False


def test_uvicorns_own_lines_are_json(tmp_path: Path) -> None:
    run = start(tmp_path)
    try:
        port = int(run.api.rpartition(":")[2])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            conn.recv(1024)
        wait_for("uvicorn's warning", lambda: "Invalid HTTP request" in run.log.read_text(), timeout=10)
    finally:
        run.stop()
    line = next(line for line in run.lines() if "Invalid HTTP request" in line)
    assert json.loads(line)["logger"] == "uvicorn.error"
