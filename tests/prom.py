"""A real Prometheus server and promtool for tests (Debian's /usr/bin/prometheus and /usr/bin/promtool).

``run_prometheus(targets, rule_files, workdir)`` is a context manager: it writes a config that scrapes the
given loopback targets every second and evaluates the given rule files every second, starts Prometheus on a
free 127.0.0.1 port with a throwaway TSDB under ``workdir``, waits until ``/-/ready`` answers, yields a
:class:`Prometheus` client and stops the server on exit (SIGTERM, then SIGKILL). Waiting is always
polling for a condition with a deadline; nothing sleeps a fixed time.

``promtool_check_metrics(text)`` runs ``promtool check metrics`` on a scrape body and fails on any problem.

Use it from a fixture::

    @pytest.fixture
    def prom(tmp_path):
        with run_prometheus(["127.0.0.1:8787"], [Path("deploy/prometheus/alerts.yml")], tmp_path) as p:
            yield p
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.waiting import wait_for

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

_POLL_SECONDS = 0.1


class PrometheusError(AssertionError):
    """Prometheus did not start, answered an error, or a condition was not met in time."""


def is_loopback(address: str) -> bool:
    """True for ``host:port`` (or ``[v6]:port``) whose host is a loopback address or ``localhost``."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Prometheus:
    """HTTP API client of a running Prometheus."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client

    # -- raw API ----------------------------------------------------------------------------------
    def api(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        """Call ``/api/v1/<path>``; returns the whole JSON body, ``status`` included (success or error)."""
        if method == "POST":
            resp = self.client.post(f"{self.url}/api/v1/{path}", data=params)
        else:
            resp = self.client.get(f"{self.url}/api/v1/{path}", params=params)
        try:
            body: dict[str, Any] = resp.json()
        except ValueError as exc:
            raise PrometheusError(f"{path}: HTTP {resp.status_code}, not JSON: {resp.text[:300]}") from exc
        return body

    def _data(self, method: str, path: str, **params: Any) -> Any:
        body = self.api(method, path, **params)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    # -- queries ----------------------------------------------------------------------------------
    def check_expr(self, expr: str) -> dict[str, Any]:
        """Evaluate ``expr`` once; the raw response's ``status`` is "error" when it does not parse."""
        return self.api("POST", "query", query=expr)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns the result list (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self._data("POST", "query", **params)
        result = data["result"]
        if data["resultType"] in {"scalar", "string"}:
            return [{"metric": {}, "value": result}]
        return list(result)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """Range query; returns the matrix (``[{"metric": {...}, "values": [[t, "v"], ...]}, ...]``)."""
        data = self._data("POST", "query_range", query=expr, start=start, end=end, step=step)
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None when it returns nothing."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{expr}: expected one series, got {len(result)}: {result}")
        return float(result[0]["value"][1])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        """Poll the instant query ``expr`` until ``predicate(result)`` holds; returns that result."""
        holder: list[list[dict[str, Any]]] = []

        def check() -> bool:
            holder[:] = [self.query(expr)]
            return predicate(holder[0])

        self._wait(check, timeout, f"{expr!r} to satisfy the predicate", lambda: holder[-1:])
        return holder[0]

    # -- alerts and rules -------------------------------------------------------------------------
    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), as GET /api/v1/alerts returns them."""
        return list(self._data("GET", "alerts")["alerts"])

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = self.alerts()
        return [a for a in alerts if a["labels"].get("alertname") == alertname and a["state"] == "firing"]

    def wait_for_alert(self, alertname: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll until ``alertname`` is firing; returns its firing alerts."""
        return self._wait(lambda: self.firing(alertname), timeout, f"alert {alertname} to fire", self.alerts)

    def rules(self) -> list[dict[str, Any]]:
        """Rule groups with each rule's health, last error and last evaluation (GET /api/v1/rules)."""
        return list(self._data("GET", "rules")["groups"])

    def wait_for_rule_evaluation(self, after: float, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll until every rule group was evaluated after the epoch time ``after``; returns the groups."""

        def evaluated() -> list[dict[str, Any]] | None:
            groups = self.rules()
            done = groups and all(_epoch(g.get("lastEvaluation")) > after for g in groups)
            return groups if done else None

        return self._wait(evaluated, timeout, "a rule evaluation", self.rules)

    # -- targets ----------------------------------------------------------------------------------
    def targets(self) -> list[dict[str, Any]]:
        return list(self._data("GET", "targets")["activeTargets"])

    def wait_for_scrapes(self, count: int = 1, timeout: float = 20.0) -> None:
        """Poll until every target is up and has been scraped at least ``count`` times."""
        self.wait_for(
            f"min(count_over_time(up[10m])) >= {count} and min(up) == 1",
            timeout=timeout,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait(self, condition: Callable[[], Any], timeout: float, what: str, show: Callable[[], Any]) -> Any:
        try:
            return wait_for(what, condition, timeout, every=_POLL_SECONDS)
        except AssertionError as exc:
            raise PrometheusError(f"{exc}\nlast seen: {show()!r}\nlog:\n{self.log_tail()}") from None


def _epoch(rfc3339: str | None) -> float:
    """Seconds since the epoch of Prometheus' RFC 3339 timestamps (nanosecond precision, 'Z')."""
    if not rfc3339 or rfc3339.startswith("0001-"):
        return 0.0
    text = rfc3339.replace("Z", "+00:00")
    head, _, tail = text.partition(".")
    if tail:  # Python parses at most microseconds
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text).timestamp()


def write_config(
    path: Path,
    targets: Sequence[str],
    rule_files: Sequence[Path],
    job: str = "balancer",
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> Path:
    """A prometheus.yml scraping ``targets`` (loopback only) as ``job`` and loading ``rule_files``."""
    bad = [t for t in targets if not is_loopback(t)]
    if bad:
        raise ValueError(f"test Prometheus only scrapes loopback addresses, not {bad}")
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def run_prometheus(
    targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    workdir: Path | None = None,
    *,
    job: str = "balancer",
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    start_timeout: float = 30.0,
) -> Iterator[Prometheus]:
    """Start a Prometheus on 127.0.0.1 scraping ``targets``; yield a client; stop it on exit."""
    if workdir is None:
        with (
            tempfile.TemporaryDirectory(prefix="prom-") as tmp,
            run_prometheus(
                targets,
                rule_files,
                Path(tmp),
                job=job,
                scrape_interval=scrape_interval,
                evaluation_interval=evaluation_interval,
                start_timeout=start_timeout,
            ) as prom,
        ):
            yield prom
        return
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(
        workdir / "prometheus.yml", targets, rule_files, job, scrape_interval, evaluation_interval
    )
    for attempt in range(3):  # the free port may be taken between free_port() and the bind
        port = free_port()
        log_path = workdir / f"prometheus-{port}.log"
        proc = _start(config, workdir / "data", port, log_path)
        try:
            prom = Prometheus(f"http://127.0.0.1:{port}", proc, log_path, httpx.Client(timeout=10.0))
            try:
                _wait_ready(prom, start_timeout)
            except PrometheusError:
                if proc.poll() is not None and "address already in use" in prom.log_tail() and attempt < 2:
                    continue
                raise
            try:
                yield prom
            finally:
                prom.client.close()
            return
        finally:
            _stop(proc)


def _start(config: Path, data: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    argv = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=info",
    ]
    with open(log_path, "wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_ready(prom: Prometheus, timeout: float) -> None:
    def ready() -> bool:
        if prom.process.poll() is not None:
            raise PrometheusError(
                f"prometheus exited with {prom.process.returncode} before it was ready:\n{prom.log_tail()}"
            )
        try:
            return prom.client.get(f"{prom.url}/-/ready", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(f"{prom.url}/-/ready", ready, timeout, every=_POLL_SECONDS)
    except AssertionError as exc:
        raise PrometheusError(f"{exc}\n{prom.log_tail()}") from None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


# --------------------------------------------------------------------------- promtool
def promtool_check_metrics(text: str) -> None:
    """Run ``promtool check metrics`` on a scrape body; raise AssertionError on any reported problem."""
    res = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    report = (res.stdout + res.stderr).decode(errors="replace").strip()
    if res.returncode != 0 or report:
        raise AssertionError(f"promtool check metrics (exit {res.returncode}) reported:\n{report}")


def promtool(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run promtool with ``args``; returns the completed process (the caller checks returncode/output)."""
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )
