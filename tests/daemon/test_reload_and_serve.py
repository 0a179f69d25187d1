"""SIGHUP's reload (daemon/reload.py) on a built instance and its real API app, and ``serve``'s start-up
order and stop: a valid file applied everywhere it matters, an invalid one or a restart-only key refused
with every problem named and the old config kept; a port or store that cannot be had ends the start
with exit 1 before anything could lead; a stop hands the lease over."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from prometheus_client import generate_latest

from balancer.api.app import create_app
from balancer.api.context import ApiContext
from balancer.config import parse
from balancer.daemon import Running, serve
from balancer.daemon.loop import Loop
from balancer.daemon.reload import Reloader
from balancer.exit_codes import EXIT_FAILED, EXIT_OK
from balancer.store import Store
from tests.api.harness import free_port
from tests.service.conftest import driver_hosts
from tests.waiting import wait_for

TOKEN = "reload-test-token-0123456789"


def settings(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hosts": driver_hosts(),
        "store": {"url": f"sqlite:///{tmp_path}/balancer.db"},
        "collection": {"interval_seconds": 1, "window": 1},
        "thresholds": {"hold_ticks": 1},
        "api": {"listen": "127.0.0.1:8787", "tokens": [{"name": "ops", "token": TOKEN}]},
    }
    data.update(changes)
    return data


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def reloader(r: Running, path: Path) -> tuple[Reloader, Loop, FastAPI]:
    app = create_app(ApiContext(r.cfg, r.store, r.service, r.metrics.registry, r.metrics, clock=r.store.now))
    loop = Loop(r.service, r.cfg.collection.interval_seconds, r.cfg.service.intake_seconds)
    return Reloader(path, r, loop, app.state), loop, app


def metric(r: Running, line: str) -> bool:
    return line in generate_latest(r.metrics.registry).decode()


def test_a_valid_file_applies_to_the_service_loop_lease_api_and_exported_config(
    make_service: Callable[..., Running], tmp_path: Path
) -> None:
    base = settings(tmp_path)
    r = make_service(**{k: v for k, v in base.items() if k != "hosts"})
    rel, loop, app = reloader(r, tmp_path / "config.yaml")
    new_token = "a-new-token-0123456789abcdef"
    write(
        rel.path,
        settings(
            tmp_path,
            automation="recommend",
            thresholds={"hold_ticks": 1, "cpu_high": 0.7},
            collection={"interval_seconds": 5, "window": 1},
            service={"intake_seconds": 2},
            api={"listen": "127.0.0.1:8787", "tokens": [{"name": "ops2", "token": new_token}]},
        ),
    )
    assert rel.reload() is True and rel.problems == []
    assert (r.cfg.automation, r.service.cfg.automation, app.state.ctx.cfg.automation) == ("recommend",) * 3
    assert (loop.interval, loop.intake_seconds, r.lease.ttl) == (5.0, 2.0, 5.0)
    assert app.state.tokens.match(new_token).name == "ops2" and app.state.tokens.match(TOKEN) is None
    assert metric(r, 'balancer_config_high_water_ratio{resource="cpu"} 0.7')
    assert metric(r, "balancer_config_collection_interval_seconds 5.0")
    assert metric(r, 'balancer_config_reloads_total{result="ok"} 1.0')
    assert metric(r, "balancer_config_last_reload_successful 1.0")


def test_a_changed_host_list_gets_a_new_collector_and_its_error_series(
    make_service: Callable[..., Running], tmp_path: Path
) -> None:
    r = make_service()
    rel, _loop, _app = reloader(r, tmp_path / "config.yaml")
    before = r.service.collector
    write(rel.path, settings(tmp_path, hosts=driver_hosts()[:2], store={"url": r.cfg.store.url}))
    assert rel.reload() is True
    assert r.service.collector is not before
    assert [h.name for h in r.cfg.hosts] == ["a", "b"]
    assert metric(r, 'balancer_collection_errors_total{host="a",kind="connect"} 0.0')
    assert not metric(r, 'balancer_collection_errors_total{host="c",kind="connect"}')
    r.service.tick()
    assert {h.name for h in r.service.live().snapshot.hosts} == {"a", "b"}  # type: ignore[union-attr]


def test_an_invalid_file_is_refused_with_every_problem_and_the_running_config_kept(
    make_service: Callable[..., Running], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = make_service(automation="off")
    rel, loop, _app = reloader(r, tmp_path / "config.yaml")
    bad = settings(tmp_path, automation="sometimes", collection={"interval_seconds": -1, "window": 1})
    write(rel.path, bad)
    caplog.set_level(logging.ERROR, logger="balancer.daemon")
    assert rel.reload() is False
    assert any(p.startswith("automation:") for p in rel.problems), rel.problems
    assert any(p.startswith("collection.interval_seconds:") for p in rel.problems), rel.problems
    assert (r.cfg.automation, loop.interval) == ("off", 1.0)
    assert metric(r, 'balancer_config_reloads_total{result="error"} 1.0')
    assert metric(r, "balancer_config_last_reload_successful 0.0")
    assert "event=config_reload_refused" in caplog.text and "automation" in caplog.text


def test_a_key_that_needs_a_restart_refuses_the_reload_naming_it(
    make_service: Callable[..., Running], tmp_path: Path
) -> None:
    r = make_service()
    rel, _loop, _app = reloader(r, tmp_path / "config.yaml")
    write(rel.path, settings(tmp_path, store={"url": f"sqlite:///{tmp_path}/other.db"}))
    assert rel.reload() is False
    (problem,) = rel.problems
    assert problem.startswith("store.url: ") and problem.endswith("this key needs a restart")
    assert r.cfg.store.url.endswith("/balancer.db")


def test_a_port_in_use_ends_the_start_with_exit_1_before_anything_leads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = parse(settings(tmp_path, api={"listen": f"127.0.0.1:{port}"}))
        caplog.set_level(logging.ERROR, logger="balancer.daemon")
        assert serve(cfg, stop=threading.Event()) == EXIT_FAILED
    assert "event=start_failed step=bind" in caplog.text
    assert not (tmp_path / "balancer.db").exists(), "the store is opened only once the port is ours"


def test_a_store_that_cannot_be_opened_ends_the_start_with_exit_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("not a directory")
    cfg = parse(
        settings(
            tmp_path,
            store={"url": f"sqlite:///{tmp_path}/file/balancer.db"},
            api={"listen": f"127.0.0.1:{free_port()}"},
        )
    )
    caplog.set_level(logging.ERROR, logger="balancer.daemon")
    assert serve(cfg, stop=threading.Event()) == EXIT_FAILED
    assert "event=start_failed step=store" in caplog.text


def test_serve_leads_answers_and_on_stop_hands_the_lease_over(tmp_path: Path) -> None:
    cfg = parse(settings(tmp_path, api={"listen": f"127.0.0.1:{free_port()}"}))
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(serve(cfg, stop=stop)), daemon=True)
    thread.start()
    url = f"http://{cfg.api.listen}"

    def leading() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).json().get("leader") is True
        except (httpx.TransportError, ValueError):
            return False

    wait_for("the instance to lead and tick", leading, 60)
    stop.set()
    thread.join(60)
    assert result == [EXIT_OK]
    with Store.open(cfg.store.url) as store:
        assert store.current_leader() is None, "a stopping instance releases the lease"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2)
