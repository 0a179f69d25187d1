"""Real `balancer run` processes on one store, and the probes the control-plane fault tests assert with.

* ``Fleet``: starts instances (``python -m balancer run``, JSON logs to a file each), finds the leader
  from the store's lease, pauses (SIGSTOP), resumes, kills them;
* ``JournalHistory``: a PostgreSQL trigger that logs every UPDATE of a journal record (states, epochs,
  the server's clock), so a test can prove that no final record was ever rewritten and no write of an
  older term landed after a takeover — facts the journal's current rows cannot show;
* ``JobMonitor``: samples every lab host's domains with libvirt's own job info, so a test can prove
  that at no moment more migrations ran than the limits allow, whatever the journal says.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import libvirt
import psycopg
import yaml

from balancer.model import MoveState
from balancer.store import Store
from tests.prom import free_port
from tests.waiting import wait_for

FINAL = (MoveState.SUCCEEDED.value, MoveState.FAILED.value, MoveState.ABORTED.value)  # never rewritten
TOKEN = "ha-fault-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Instance:
    name: str
    cfg: dict[str, Any]
    cfg_path: Path
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return f"http://{self.cfg['api']['listen']}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Its JSON log lines (optionally only ``event=name``)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if name is None or data.get("event") == name:
                out.append(data)
        return out

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.api}{path}", headers=AUTH, timeout=10)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.api}{path}", headers=AUTH, json=body, timeout=30)

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(f"{self.api}{path}", headers=AUTH, timeout=30)

    def metric(self, name: str) -> float | None:
        """A sample of ``name`` (exact series text before the value) from its /metrics; None if absent."""
        try:
            text = httpx.get(f"{self.api}/metrics", timeout=5).text
        except httpx.TransportError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " ") or (line.startswith(name + "{") and line.split(" ")[0] == name):
                return float(line.rsplit(" ", 1)[1])
        return None


@dataclass
class Fleet:
    """Instances of `balancer run` sharing ``base`` config (each its own API port) in ``workdir``."""

    workdir: Path
    base: dict[str, Any]
    instances: dict[str, Instance] = field(default_factory=dict)

    def start(self, name: str, env: dict[str, str] | None = None, **overrides: Any) -> Instance:
        cfg = json.loads(json.dumps(self.base))
        cfg.setdefault("api", {})["listen"] = f"127.0.0.1:{free_port()}"
        cfg["api"]["tokens"] = [{"name": "ops", "token": TOKEN}]
        cfg.update(overrides)
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "balancer", "run", "-c", str(path), "--log-format", "json"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        inst = Instance(name, cfg, path, log, proc)
        self.instances[name] = inst
        return inst

    def leader(self, store: Store) -> Instance | None:
        lease = store.current_leader()
        if lease is None:
            return None
        return next((i for i in self.instances.values() if f"/{i.pid}/" in lease.holder), None)

    def wait_leader(self, store: Store, timeout: float = 60, other_than: Instance | None = None) -> Instance:
        def found() -> Instance | None:
            lead = self.leader(store)
            return lead if lead is not None and lead is not other_than else None

        return wait_for("a leader", found, timeout)

    def stop(self) -> None:
        for inst in self.instances.values():
            if inst.proc.poll() is None:
                inst.resume()
                inst.proc.send_signal(signal.SIGTERM)
        for inst in self.instances.values():
            try:
                inst.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                inst.proc.kill()
                inst.proc.wait(10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}\n{i.log.read_text(errors='replace')[-6000:]}" for n, i in self.instances.items()
        )


class JournalHistory:
    """Every UPDATE of a journal record and of a drain, logged in order by triggers in the store itself.

    On SQLite, whose writers are serialised, ``seq`` is the commit order; on PostgreSQL rows are
    ordered by the server's clock at the write. Works on the store's URL (tables must exist: open the
    Store once first).
    """

    def __init__(self, store_url: str) -> None:
        self.url = store_url
        self.pg = store_url.startswith("postgresql")
        if self.pg:
            self._pg(
                "CREATE TABLE journal_history (seq BIGSERIAL, kind TEXT, id TEXT, old_state TEXT, new_state"
                " TEXT, old_epoch BIGINT, new_epoch BIGINT, at TIMESTAMPTZ DEFAULT clock_timestamp())",
                "CREATE FUNCTION log_insert() RETURNS trigger AS $$ BEGIN INSERT INTO journal_history"
                " (kind, id, old_state, new_state, old_epoch, new_epoch) VALUES ('insert', NEW.id,"
                " NULL, NEW.state, NEW.epoch, NEW.epoch); RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER journal_insert AFTER INSERT ON migrations FOR EACH ROW"
                " EXECUTE FUNCTION log_insert()",
                "CREATE FUNCTION log_journal() RETURNS trigger AS $$ BEGIN INSERT INTO journal_history"
                " (kind, id, old_state, new_state, old_epoch, new_epoch) VALUES ('migration', OLD.id,"
                " OLD.state, NEW.state, OLD.epoch, NEW.epoch); RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER journal_history AFTER UPDATE ON migrations FOR EACH ROW"
                " EXECUTE FUNCTION log_journal()",
                "CREATE FUNCTION log_drain() RETURNS trigger AS $$ BEGIN INSERT INTO journal_history"
                " (kind, id, old_state, new_state, old_epoch, new_epoch) VALUES ('drain', OLD.id::text,"
                " OLD.state, NEW.state, 0, 0); RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER drain_history AFTER UPDATE ON drains FOR EACH ROW"
                " EXECUTE FUNCTION log_drain()",
            )
        else:
            self._sqlite(
                "CREATE TABLE journal_history (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, id TEXT,"
                " old_state TEXT, new_state TEXT, old_epoch INTEGER, new_epoch INTEGER, at REAL)",
                "CREATE TRIGGER journal_history AFTER UPDATE ON migrations BEGIN INSERT INTO journal_history"
                " (kind, id, old_state, new_state, old_epoch, new_epoch, at) VALUES ('migration', OLD.id,"
                " OLD.state, NEW.state, OLD.epoch, NEW.epoch, julianday('now')); END",
                "CREATE TRIGGER journal_insert AFTER INSERT ON migrations BEGIN INSERT INTO journal_history"
                " (kind, id, old_state, new_state, old_epoch, new_epoch, at) VALUES ('insert', NEW.id,"
                " NULL, NEW.state, NEW.epoch, NEW.epoch, julianday('now')); END",
                "CREATE TRIGGER drain_history AFTER UPDATE ON drains BEGIN INSERT INTO journal_history"
                " (kind, id, old_state, new_state, old_epoch, new_epoch, at) VALUES ('drain', OLD.id,"
                " OLD.state, NEW.state, 0, 0, julianday('now')); END",
            )

    def _pg(self, *sql: str) -> list[Any]:
        dsn = self.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            out: list[Any] = []
            for q in sql:
                cur = conn.execute(q)  # type: ignore[arg-type]
                out = list(cur) if cur.description else out
            return out

    def _sqlite(self, *sql: str) -> list[Any]:
        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
        try:
            out: list[Any] = []
            for q in sql:
                cur = conn.execute(q)
                out = cur.fetchall() if cur.description else out
            conn.commit()
            return out
        finally:
            conn.close()

    def rows(self) -> list[tuple[int, str, str, str, str, int, int, Any]]:
        """(seq, kind, id, old_state, new_state, old_epoch, new_epoch, at), in write order."""
        order = "at, seq" if self.pg else "seq"
        q = (
            "SELECT seq, kind, id, old_state, new_state, old_epoch, new_epoch, at FROM journal_history"
            f" ORDER BY {order}"
        )
        return self._pg(q) if self.pg else self._sqlite(q)

    def check(self) -> None:
        """No final record rewritten; a record's epoch never goes back; no write of a term after a later
        term first wrote (a paused or cut-off leader landed nothing once replaced)."""
        rows = [r for r in self.rows() if r[1] == "migration"]
        rewritten = [r for r in rows if r[3] in FINAL]
        assert not rewritten, f"final records rewritten: {rewritten}"
        backwards = [r for r in rows if r[6] < r[5]]
        assert not backwards, f"epochs went back: {backwards}"
        first_seen: dict[int, int] = {}
        for i, r in enumerate(rows):
            first_seen.setdefault(r[6], i)
        for i, r in enumerate(rows):
            later = [e for e, at in first_seen.items() if e > r[6] and at < i]
            assert not later, f"epoch {r[6]} wrote {r} after epoch(s) {later} had taken over"

    def after_cancel(self, drain_id: int, record_ids: set[str]) -> list[Any]:
        """Writes that queued or started a move of ``record_ids`` after drain ``drain_id`` was cancelled."""
        rows = self.rows()
        cancel = next(
            (
                i
                for i, r in enumerate(rows)
                if r[1] == "drain" and r[2] == str(drain_id) and r[4] == "cancelled"
            ),
            None,
        )
        if cancel is None:
            return []
        return [
            r
            for r in rows[cancel + 1 :]
            if r[2] in record_ids
            and (r[1] == "insert" or (r[1] == "migration" and r[3] == "queued" and r[4] == "prechecking"))
        ]


class JobMonitor:
    """Samples every lab host every ``every`` s: running domains with a job are outgoing migrations,
    paused ones with a job incoming. Runs in a thread while the ``with`` block runs."""

    def __init__(self, lab: Any, every: float = 0.25) -> None:
        self.lab = lab
        self.every = every
        self.samples: list[tuple[float, Counter[str], Counter[str]]] = []  # (t, outgoing, incoming)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-monitor", daemon=True)

    def __enter__(self) -> JobMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conns = {h.name: self.lab.connect(h.name) for h in self.lab.hosts}
        try:
            while not self._stop.wait(self.every):
                out: Counter[str] = Counter()
                inc: Counter[str] = Counter()
                for host, conn in conns.items():
                    for dom in _domains(conn):
                        try:
                            if dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE:
                                continue
                            running = dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
                        except libvirt.libvirtError:
                            continue  # it left between the listing and the look
                        (out if running else inc)[host] += 1
                self.samples.append((time.monotonic(), out, inc))
        finally:
            for conn in conns.values():
                conn.close()

    def max_outgoing(self, host: str) -> int:
        return max((o[host] for _, o, _ in self.samples), default=0)

    def max_incoming(self, host: str) -> int:
        return max((i[host] for _, _, i in self.samples), default=0)


def _domains(conn: libvirt.virConnect) -> Iterator[libvirt.virDomain]:
    try:
        yield from conn.listAllDomains(0)
    except libvirt.libvirtError:
        return


def running_copies(lab: Any, vm: str) -> list[str]:
    """Hosts where a domain named ``vm`` runs."""
    return [
        h.name for h in lab.hosts for d in lab.host_domains(h.name) if d.name == vm and d.state == "running"
    ]


def every_vm_runs_once(lab: Any, names: list[str]) -> dict[str, str]:
    """Each guest runs on exactly one host and is defined nowhere else (awaited briefly: a switch-over
    may be finishing); host by guest."""
    where: dict[str, str] = {}
    for vm in names:
        hosts = wait_for(
            f"{vm} running exactly once", lambda v=vm: (h := running_copies(lab, v)) and len(h) == 1 and h, 60
        )
        defined = [h.name for h in lab.hosts for d in lab.host_domains(h.name) if d.name == vm]
        assert defined == hosts, f"{vm}: defined on {defined}, running on {hosts}"
        where[vm] = hosts[0]
    return where
