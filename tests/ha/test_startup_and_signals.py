"""Start-up and signals of a real `balancer run`: a port it cannot bind or a store it cannot open ends it
non-zero before it may lead; SIGHUP reloads a valid config and keeps the old one on a bad one; systemd
hears READY=1 only once the API is bound and a tick ran, RELOADING=1 around a reload, STOPPING=1 at last."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from balancer.store import Store
from tests.ha.fleet import Fleet
from tests.prom import free_port
from tests.service.conftest import driver_hosts
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def base(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "hosts": driver_hosts(),
        "store": {"url": f"sqlite:///{tmp_path}/balancer.db"},
        "collection": {"interval_seconds": 1, "window": 1},
        "service": {"shutdown_grace_seconds": 0},
    }
    cfg.update(extra)
    return cfg


def test_a_taken_port_ends_the_process_before_it_may_lead(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        fleet = Fleet(tmp_path, base(tmp_path))
        inst = fleet.start("a", api={"listen": f"127.0.0.1:{port}"})
        assert inst.proc.wait(60) == 1
    (line,) = inst.events("start_failed")
    assert (line["step"], line["listen"]) == ("bind", f"127.0.0.1:{port}")
    assert "Address already in use" in line["error"]
    assert not inst.events("leader_acquired")
    with Store.open(f"sqlite:///{tmp_path}/balancer.db") as store:
        grant = store.acquire_lease("probe", 10.0)
        assert grant is not None and grant.epoch == 1  # nobody ever held the lease


def test_an_unreachable_store_ends_the_process_before_it_may_lead(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://u:sekret@127.0.0.1:{free_port()}/b"
    fleet = Fleet(tmp_path, base(tmp_path, store={"url": url}))
    inst = fleet.start("a")
    assert inst.proc.wait(60) == 1
    (line,) = inst.events("start_failed")
    assert line["step"] == "store" and "sekret" not in inst.log.read_text()
    with socket.socket() as probe:  # the port it had bound is free again: it never served
        probe.bind(("127.0.0.1", int(inst.cfg["api"]["listen"].rsplit(":", 1)[1])))


class Notify:
    """systemd's side of sd_notify: a datagram socket whose messages the test reads."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(60)
        self.seen: list[str] = []

    def next(self) -> str:
        msg = self.sock.recv(4096).decode()
        self.seen.append(msg)
        return msg


def test_sighup_reloads_a_valid_config_and_keeps_the_running_one_when_the_new_one_is_bad(
    tmp_path: Path,
) -> None:
    notify = Notify(tmp_path / "notify.sock")
    fleet = Fleet(tmp_path, base(tmp_path, automation="recommend"))
    inst = fleet.start("a", env={"NOTIFY_SOCKET": notify.path})
    try:
        assert notify.next() == "READY=1"
        # ready means: the API answers and a tick has run
        assert httpx.get(f"{inst.api}/healthz").status_code == 200
        assert (inst.metric('balancer_ticks_total{result="ok"}') or 0) >= 1
        assert inst.metric('balancer_automation_level{level="recommend"}') == 1.0

        good = dict(inst.cfg, automation="auto")
        inst.cfg_path.write_text(yaml.safe_dump(good))
        inst.proc.send_signal(1)  # SIGHUP
        assert [notify.next(), notify.next()] == ["RELOADING=1", "READY=1"]
        assert inst.metric('balancer_config_reloads_total{result="ok"}') == 1.0
        assert inst.metric('balancer_automation_level{level="auto"}') == 1.0
        assert inst.metric("balancer_config_last_reload_successful") == 1.0

        bad = dict(good, thresholds={"cpu_high": 7})
        inst.cfg_path.write_text(yaml.safe_dump(bad))
        inst.proc.send_signal(1)
        assert [notify.next(), notify.next()] == ["RELOADING=1", "READY=1"]
        assert inst.metric('balancer_config_reloads_total{result="error"}') == 1.0
        assert inst.metric("balancer_config_last_reload_successful") == 0.0
        assert inst.metric('balancer_automation_level{level="auto"}') == 1.0  # the old config runs on
        (refused,) = inst.events("config_reload_refused")
        assert "thresholds.cpu_high: 7" in str(refused["problems"]), refused

        moved = dict(good, store={"url": f"sqlite:///{tmp_path}/other.db"})
        inst.cfg_path.write_text(yaml.safe_dump(moved))
        inst.proc.send_signal(1)
        assert [notify.next(), notify.next()] == ["RELOADING=1", "READY=1"]
        assert inst.metric('balancer_config_reloads_total{result="error"}') == 2.0
        last = inst.events("config_reload_refused")[-1]
        assert "store.url" in str(last["problems"]) and "needs a restart" in str(last["problems"]), last
        assert inst.proc.poll() is None  # a bad reload never ends the service

        inst.proc.terminate()
        assert notify.next() == "STOPPING=1"
        assert inst.proc.wait(60) == 0
    finally:
        fleet.stop()
        notify.sock.close()


def test_sighup_without_a_readable_config_keeps_running(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, base(tmp_path))
    inst = fleet.start("a")
    try:
        wait_for("a tick", lambda: (inst.metric('balancer_ticks_total{result="ok"}') or 0) >= 1, 60)
        inst.cfg_path.unlink()
        inst.proc.send_signal(1)
        wait_for(
            "the refused reload",
            lambda: inst.metric('balancer_config_reloads_total{result="error"}') == 1.0,
            30,
        )
        (refused,) = inst.events("config_reload_refused")
        assert "does not exist" in str(refused["problems"])
        assert inst.proc.poll() is None
    finally:
        fleet.stop()


def test_run_without_a_config_file_says_which_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "balancer", "run", "-c", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert f"file {missing}: does not exist" in r.stderr and "Traceback" not in r.stderr
