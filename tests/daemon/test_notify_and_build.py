"""systemd's readiness datagram (daemon/notify.py) on real unix sockets, and what ``build(cfg)`` wires:
the parts of one instance, the lease's length, the leadership news reaching the service and its metrics."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from balancer.config import parse
from balancer.daemon import Running, api_url
from balancer.daemon.build import lease_ttl
from balancer.daemon.notify import notify
from tests.service.conftest import driver_hosts


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield sock, path
    finally:
        sock.close()


def test_notify_sends_one_datagram_to_the_socket_systemd_names(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1") is True
    assert notify("STOPPING=1") is True
    assert [sock.recv(64), sock.recv(64)] == [b"READY=1", b"STOPPING=1"]


def test_notify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"balancer-notify-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("RELOADING=1") is True
        assert sock.recv(64) == b"RELOADING=1"


def test_outside_systemd_notify_does_nothing_and_a_dead_socket_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    caplog.set_level(logging.WARNING, logger="balancer.daemon")
    assert notify("READY=1") is False
    assert "event=notify_failed state='READY=1'" in caplog.text


def test_the_lease_lasts_one_interval_unless_configured() -> None:
    base = {"hosts": driver_hosts(), "collection": {"interval_seconds": 30}}
    assert lease_ttl(parse(base)) == 30.0
    assert lease_ttl(parse({**base, "service": {"lease_seconds": 12}})) == 12.0
    assert lease_ttl(parse({**base, "collection": {"interval_seconds": 0.5}})) == 1.0  # at least a second
    assert api_url(parse({**base, "api": {"listen": "10.1.2.3:9000"}})) == "http://10.1.2.3:9000"


def test_build_wires_one_instance_and_the_leases_news_reaches_the_service(
    make_service: Callable[..., Running],
) -> None:
    r = make_service(automation="recommend", api={"listen": "127.0.0.1:9999"}, service={})
    assert (r.api_url, r.cfg.automation, r.service.cfg is r.cfg) == (
        "http://127.0.0.1:9999",
        "recommend",
        True,
    )
    assert r.lease.holder.endswith("@http://127.0.0.1:9999") and r.lease.ttl == 1.0
    assert r.runner is None  # nothing leads before the lease is tried
    term = r.lease.renew()
    assert term is not None
    text = generate_latest(r.metrics.registry).decode()
    assert 'balancer_leader_changes_total{event="acquired"} 1.0' in text
    assert 'balancer_automation_level{level="recommend"} 1.0' in text
    r.service.tick()
    assert r.runner is not None and r.service.live().epoch == term.epoch
    r.lease.stop()  # hands the lease over: the service hears it and its runner detaches
    assert r.runner is None or r.runner.detached
    assert 'balancer_leader_changes_total{event="lost"} 1.0' in generate_latest(r.metrics.registry).decode()
