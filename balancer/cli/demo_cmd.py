"""`balancer demo`: the README's main job — a local lab, the service in auto mode, balancing, a drain.

1. brings up a lab of 3 libvirtd hosts (or reuses the one in --dir) with guests placed unevenly:
   three CPU-burning guests on h1, one on h2, none on h3;
2. writes a config.yaml for it (automation auto, a 5 s tick, a small declared capacity per host,
   sized from the guests' measured CPU so h1 starts over its mark on an idle or a busy machine)
   and starts `balancer run` on it;
3. shows the cluster balancing (h1 stays over its CPU mark; a hotspot move relieves it), then asks
   for a drain of the least loaded host over the HTTP API and shows its progress until it is empty;
4. prints where to look (API, /metrics, the log) and keeps the service running until Ctrl-C
   (or stops at once with --exit), then stops the service and takes the lab down (unless --keep-lab).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml

from balancer.cli.common import fail_without_lab, lab_missing
from balancer.exit_codes import EXIT_FAILED, EXIT_OK

DEMO_DIR = Path("/var/tmp/balancer-demo")
GUESTS = (  # name, host, cpu burn %: h1 starts over its CPU mark, h3 empty
    ("web-1", "h1", 35),
    ("web-2", "h1", 35),
    ("web-3", "h1", 30),
    ("db-1", "h2", 20),
)
PORT = 8787
H1_START_LOAD = 0.7  # h1's CPU load at the start, of its declared capacity: over the 0.6 mark, and
# the four guests still fit on two hosts (the drain) whichever way the balancing spread them: two web
# guests on one host, each planned at its mean plus one standard deviation of its noisy TCG load
# (policy.cpu_burst_sigmas), stay under the mark (at 0.8 they did not, by ~5 % of a host)


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _config(lab_hosts_yaml: str, directory: Path, token: str) -> dict[str, Any]:
    cfg: dict[str, Any] = yaml.safe_load(lab_hosts_yaml)
    cfg.update(
        {
            "automation": "auto",
            "collection": {"interval_seconds": 5, "window": 3, "host_timeout_seconds": 5},
            # h1 is relieved because it stayed over its CPU mark (hotspot), not by a balance move made on
            # the first CPU sample, which the service's own start-up depresses on a small machine
            "thresholds": {"cpu_high": 0.6, "hold_ticks": 2, "target_imbalance": 0.5},
            "policy": {"cooldown_minutes": 30, "max_moves_per_tick": 2},
            "limits": {"bandwidth_mib_s": 50, "host_bandwidth_mib_s": 100},
            "executor": {"memory_headroom_mib": 64},
            "store": {"url": f"sqlite:///{directory}/balancer.db"},
            "api": {"listen": f"127.0.0.1:{PORT}", "tokens": [{"name": "demo", "token": token}]},
            "service": {"efficacy_minutes": 1, "shutdown_grace_seconds": 30},
        }
    )
    return cfg


def _guest_cores(lab: Any, names: set[str], settle: float = 10.0, seconds: float = 10.0) -> float:
    """Cores the named guests use together now: CPU time over wall time, as the service measures it.

    A guest's CPU burn is a duty cycle of its vCPU, so it reads low when the machine is busy (a
    50 % burn shows ~26 % of a core under load): the demo sizes the hosts from this, not the burns.
    """
    time.sleep(settle)  # the first seconds after a guest's first heartbeat still carry its boot
    conns = [lab.connect(h.name) for h in lab.hosts]
    try:

        def cpu_ns() -> int:
            return sum(
                d.info()[4] for c in conns for d in c.listAllDomains() if d.isActive() and d.name() in names
            )

        start, before = time.monotonic(), cpu_ns()
        time.sleep(seconds)  # a measurement interval, not a wait for a condition
        return (cpu_ns() - before) / 1e9 / (time.monotonic() - start)
    finally:
        for c in conns:
            c.close()


def _hosts_line(client: httpx.Client) -> str:
    rows = client.get("/v1/hosts").json()
    parts = []
    for h in rows:
        cpu = (h.get("load") or {}).get("cpu")
        shown = "-" if cpu is None else f"{100 * cpu:.0f}%"
        parts.append(f"{h['name']}[{h['state']}] cpu {shown} vms {h['vms']}")
    return " | ".join(parts)


def _host_to_drain(client: httpx.Client) -> str:
    """The up host with the least CPU load (then the fewest VMs, then the name): where the balancing
    left things depends on the load the guests really make, and the other two hosts must have room,
    under their marks, for what the drained one holds."""
    rows = [h for h in client.get("/v1/hosts").json() if h["state"] == "up"]
    least = min(rows, key=lambda h: ((h.get("load") or {}).get("cpu") or 0.0, h["vms"], h["name"]))
    return str(least["name"])


def _wait_ready(client: httpx.Client, service: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise typer.Exit(EXIT_FAILED)
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)  # polling a UI condition, not synchronising a test
    raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        directory: Path = typer.Option(
            DEMO_DIR, "--dir", help="Where the demo keeps its lab, config, DB and log."
        ),
        exit_after: bool = typer.Option(False, "--exit", help="Stop after the drain instead of running on."),
        keep_lab: bool = typer.Option(False, "--keep-lab", help="Leave the lab up when the demo ends."),
    ) -> None:
        """Run the balancer against a local lab: balance an uneven cluster, then drain a host
        (needs the lab: pip install 'balancer\\[lab]')."""
        try:
            from balancer.lab import Lab
        except ModuleNotFoundError as exc:
            if not lab_missing(exc):
                raise
            fail_without_lab("demo")

        directory.mkdir(parents=True, exist_ok=True)
        lab_dir = directory / "lab"
        _say(f"lab: 3 libvirtd hosts in {lab_dir}")
        lab = Lab.open(lab_dir) if (lab_dir / "lab.json").exists() else Lab.up(3, lab_dir)
        for h in lab.hosts:
            print(f"   {h.name}: control {h.control_uri}  migration {h.migration_uri}")
        present = {d.name for d in lab.domains()}
        for name, host, burn in GUESTS:
            if name not in present:
                lab.create_guest(  # 192 MiB: the size the demo was built and checked with
                    name, host, memory_mib=192, overlay_mib=32, dirty_mib_s=2, disk_mib_s=0, cpu_burn_pct=burn
                )
        for name, _, _ in GUESTS:
            where = next(d.host for d in lab.domains() if d.name == name)
            lab.wait_heartbeat(where, name, timeout=180)
        print("   guests up: " + ", ".join(f"{n}@{h} (burns {b}% CPU)" for n, h, b in GUESTS))

        # Declared capacity from what the guests really use on this machine now, so h1 starts over the
        # mark whether the machine is idle or busy.
        used = _guest_cores(lab, {n for n, _, _ in GUESTS})
        h1_cores = used * sum(b for _, h, b in GUESTS if h == "h1") / sum(b for _, _, b in GUESTS)
        cpus = max(0.05, round(h1_cores / H1_START_LOAD, 2))
        print(
            f"   measured: the guests use {used:.2f} cores together on this machine now; each host "
            f"declares {cpus:.2f} CPU, so h1 starts at ~{100 * H1_START_LOAD:.0f} % (mark 60 %)"
        )

        for stale in directory.glob("balancer.db*"):  # a fresh journal: what moved is read from it
            stale.unlink()
        token = secrets.token_urlsafe(24)
        cfg_path = directory / "config.yaml"
        cfg_path.write_text(
            yaml.safe_dump(_config(lab.config_yaml(cpus=cpus, memory_mib=1024), directory, token))
        )
        log_path = directory / "balancer.log"
        _say(f"service: balancer run -c {cfg_path}  (log: {log_path})")
        with open(log_path, "ab") as log:
            service = subprocess.Popen(
                [sys.executable, "-m", "balancer", "run", "-c", str(cfg_path)], stdout=log, stderr=log
            )
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{PORT}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        code = 0
        try:
            _wait_ready(client, service, 60)
            _say("balancing: h1 is over its CPU mark (60 %); watch VMs move (Ctrl-C to stop)")
            deadline = time.monotonic() + 300
            moved = False
            while time.monotonic() < deadline:
                print("   " + _hosts_line(client), flush=True)
                migrations = client.get("/v1/migrations").json()
                done = [m for m in migrations if m["state"] == "succeeded"]
                running = [m for m in migrations if not m["final"]]  # the balancing moves finish first
                over = [
                    h for h in client.get("/v1/hosts").json() if ((h.get("load") or {}).get("cpu") or 0) > 0.6
                ]
                moved = moved or bool(done)
                if moved and not over and not running:
                    break
                time.sleep(5)
            for m in client.get("/v1/migrations").json():
                print(f"   migration {m['vm']}: {m['source']} → {m['target']} {m['state']} ({m['reason']})")

            drained = _host_to_drain(client)
            _say(
                f"drain: POST /v1/drains {{host: {drained}}} — the operator's maintenance request "
                "(the host with the least CPU load, so the other two have room for its VMs)"
            )
            r = client.post("/v1/drains", json={"host": drained, "note": "demo maintenance"})
            print(f"   {r.status_code} {r.json()}")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                d = client.get(f"/v1/drains/{drained}").json()
                p = d.get("progress") or {}
                print(
                    f"   drain {drained}: {d['state']}, {p.get('vms_remaining', '?')} VM(s) left, "
                    f"in flight {p.get('in_flight', [])}, done {p.get('done', 0)}, "
                    f"blockers {p.get('blockers', [])}",
                    flush=True,
                )
                if d["state"] != "open" or (p.get("blockers") and not p.get("in_flight")):
                    break
                time.sleep(5)
            print("   " + _hosts_line(client))
            print(
                f"   {drained} stays in maintenance (nothing is placed on it) until "
                f"`balancer undrain {drained}`"
            )
            _say("where to look")
            print(f"   API + OpenAPI docs: http://127.0.0.1:{PORT}/docs  (token in {cfg_path})")
            print(f"   Prometheus metrics: http://127.0.0.1:{PORT}/metrics")
            print(
                f"   CLI: balancer COMMAND -c {cfg_path}, e.g. `balancer status -c {cfg_path}`, "
                f"`BALANCER_TOKEN=... balancer drains -c {cfg_path}`"
            )
            print(f"   log: {log_path}")
            if not exit_after:
                print("   the service keeps running; Ctrl-C stops it and takes the lab down", flush=True)
                service.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if service.poll() is None:
                service.send_signal(signal.SIGTERM)
                try:
                    service.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    service.kill()
            code = service.returncode or 0
            if not keep_lab:
                _say("lab down")
                lab.down()
        raise typer.Exit(code if code > 0 else EXIT_OK)
