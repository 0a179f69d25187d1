"""Building blocks for the API and CLI tests: a config, a cluster snapshot, a plan and an ApiContext.

Three hosts h1-h3, VMs web-1/web-2/db-1 on h1 and app-1 on h2; the plan moves web-1 and web-2 off h1
and skips db-1. Tokens: ``ops`` (write), ``viewer`` (read).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from balancer.api.actions import resolve_migration
from balancer.api.app import ApiContext
from balancer.api.context import Live, NotLeader
from balancer.api.schemas import MigrationCreate, ProgressNow
from balancer.config import Config, parse
from balancer.errors import NotReady
from balancer.metrics.export import Metrics
from balancer.model import (
    LoadChange,
    MigrationRecord,
    Move,
    MoveCost,
    MoveState,
    Plan,
    PlannerState,
    Skip,
    Snapshot,
)
from balancer.reasons import Reason
from balancer.store import Store
from tests.builders import GIB, NOW, host, snapshot, vm
from tests.clock import ManualClock

WRITE_TOKEN = "w" * 16 + "-write-token"
READ_TOKEN = "r" * 16 + "-read-token"
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
HOSTS = ("h1", "h2", "h3")


def config(
    store_url: str, *, open_reads: bool = False, listen: str = "127.0.0.1:8787", **extra: Any
) -> Config:
    data: dict[str, Any] = {
        "hosts": [{"name": h, "uri": f"qemu+tcp://{h}/system"} for h in HOSTS],
        "store": {"url": store_url},
        "api": {
            "listen": listen,
            "open_reads": open_reads,
            "tokens": [
                {"name": "ops", "token": WRITE_TOKEN, "role": "write"},
                {"name": "viewer", "token": READ_TOKEN, "role": "read"},
            ],
        },
    }
    data.update(extra)
    return parse(data)


def cluster() -> Snapshot:
    return snapshot(
        hosts=[host("h1", cpus=8.0), host("h2"), host("h3")],
        vms=[
            vm("web-1", "h1", cpu_cores=2.0),
            vm("web-2", "h1", cpu_cores=2.0),
            vm("db-1", "h1", memory_bytes=64 * GIB),
            vm("app-1", "h2", cpu_std_cores=0.25),
        ],
    )


def _move(name: str, target: str, reason: Reason = Reason.BALANCE) -> Move:
    return Move(
        vm=name,
        source="h1",
        target=target,
        reason=reason,
        cost=MoveCost(disk_bytes=5 * GIB, backing_bytes=0, memory_bytes=4 * GIB, seconds=90.0),
        source_load=LoadChange(before={"cpu": 0.8}, after={"cpu": 0.55}),
        target_load=LoadChange(before={"cpu": 0.1}, after={"cpu": 0.2}),
        imbalance_before=0.3,
        imbalance_after=0.2,
        detail=f"{name}: h1 cpu 0.80 -> 0.55",
    )


def plan() -> Plan:
    return Plan(
        created_at=NOW,
        moves=(_move("web-1", "h2"), _move("web-2", "h3")),
        skips=(Skip("vm", "db-1", Reason.NO_MEMORY, "no host with 64 GiB free"),),
        imbalance_before=0.3,
        imbalance_after=0.1,
        resource_imbalance_before={"cpu": 0.3},
        resource_imbalance_after={"cpu": 0.1},
        overloaded_before=("h1",),
    )


@dataclass
class Aborts:
    """The executor's abort seam: records every call, answers True for the ids in ``running``."""

    running: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, record_id: str) -> bool:
        with self.lock:
            self.calls.append(record_id)
            return record_id in self.running


@dataclass
class StandIn:
    """A ServiceControl for API tests: a Live value the test sets, recorded aborts and migrate requests,
    and the real planner for previews. (The service itself is tested against real libvirt elsewhere.)"""

    value: Live
    aborts: Aborts
    cfg: Config
    migrations: list[tuple[MigrationCreate, str]] = field(default_factory=list)
    progress_of: dict[str, ProgressNow] = field(default_factory=dict)

    def live(self) -> Live:
        return self.value

    def set(self, **changes: Any) -> None:
        self.value = replace(self.value, **changes)

    def abort(self, record_id: str) -> bool:
        return self.aborts(record_id)

    def migrate(self, request: MigrationCreate, actor: str) -> MigrationRecord:
        if not self.value.leader:
            raise NotLeader("this instance does not lead", None)
        source = resolve_migration(self.cfg, self.value.snapshot, request)
        self.migrations.append((request, actor))
        return MigrationRecord(
            id=f"m-{len(self.migrations)}",
            vm=request.vm,
            source=source,
            target=request.target,
            reason=Reason.MANUAL,
            state=MoveState.QUEUED,
            created_at=NOW,
            updated_at=NOW,
        )

    def progress(self, record_id: str) -> ProgressNow | None:
        return self.progress_of.get(record_id)

    def preview(self, drains: Collection[str]) -> Plan:
        from balancer.policy import plan as make_plan
        from balancer.service import wiring

        snap = self.value.snapshot
        if snap is None:  # as the service answers before its first collection
            raise NotReady("no collection has completed yet; retry after the first tick")
        snap = wiring.with_host_states(snap, set(drains), set())
        state = PlannerState(draining=frozenset(drains))
        return make_plan(snap, state, wiring.plan_args(self.cfg), NOW)


@dataclass
class Clock(ManualClock):
    now: float = NOW + 60


def context(
    cfg: Config,
    store: Store,
    *,
    live: Live | None = None,
    aborts: Aborts | None = None,
    clock: Callable[[], float] | None = None,
) -> ApiContext:
    registry = CollectorRegistry()
    value = (
        live
        if live is not None
        else Live(
            snapshot=cluster(), last_tick=NOW, last_tick_monotonic=time.monotonic(), leader=True, epoch=1
        )
    )
    return ApiContext(
        cfg=cfg,
        store=store,
        control=StandIn(value, aborts if aborts is not None else Aborts(), cfg),
        registry=registry,
        metrics=Metrics(registry),
        clock=clock if clock is not None else Clock(),
    )


def stand_in(ctx: ApiContext) -> StandIn:
    assert isinstance(ctx.control, StandIn)
    return ctx.control


# --------------------------------------------------------------------------- for the CLI tests
def write_config(path: Path, store_url: str, listen: str = "127.0.0.1:8787") -> Path:
    """config.yaml for the CLI: the hosts, the store and the tokens of ``config()``."""
    path.write_text(yaml.safe_dump(config(store_url, listen=listen).dump(secrets=True)))
    return path


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 in a thread; yields its URL once it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def problems(r: Any) -> list[dict[str, Any]]:
    """The problems of a 422 answer, after checking its code and that ``detail`` says the same in one line."""
    body = r.json()
    assert (r.status_code, body["code"]) == (422, "invalid_input"), body
    assert body["detail"] == "; ".join(
        f"{p['field']}: {p['value']!r} {p['message']}" for p in body["problems"]
    )
    return body["problems"]  # type: ignore[no-any-return]


def error(r: Any) -> tuple[int, str, str]:
    """(status, code, detail) of an error answer; its body holds no other field but leader/leader_url."""
    body = r.json()
    assert set(body) - {"leader", "leader_url"} == {"code", "detail"}, body
    return r.status_code, body["code"], body["detail"]


def free_port() -> int:
    """A port nothing listens on (bound and released: connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
