"""Planner speed: plan() time and peak memory for synthetic fleets of 100 / 1,000 / 10,000 hosts.

    .venv/bin/python bench/plan_speed.py [--quick]

Fleets (seeded, 30 VMs per host on average):

* VM CPU: a PlanetLab trace row (shared/data/planetlab/20110303.csv.gz, one day of 5-minute CPU %) at a
  random tick, smoothed over the last 5 samples, × vcpus (1/2/4/8 with p = .30/.35/.25/.10).
* VM memory: 1/2/4/8/16/32 GiB with p = .15/.25/.30/.20/.08/.02 (a typical flavour mix); overlays
  lognormal (median 10 GiB, σ 1, at most 200 GiB) on one of 10 base images of 2-10 GiB; dirty rate
  exponential with mean 10 MiB/s.
* Hosts: 64 cores, 256 GiB (one in five 512 GiB), 4 TiB disk, each holding 4 of the 10 base images;
  2 % of hosts get a double share of VMs (hotspots, persistent for 3 ticks), 1 % are draining.

Two argument sets: ``default`` (config defaults: max 4 moves, 10 % improvement per move) and ``busy``
(max 50 moves, 0.1 % improvement, so the balance goal scores all VM × host candidates 50 times).
Prints one line per size and writes bench/results/plan_speed.json; the goal is ≤ 1 s at 1,000 / 30,000.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from balancer.model import VM, BackingFile, Disk, Host, HostState, PlannerState, Snapshot  # noqa: E402
from balancer.policy import PlanArgs, plan  # noqa: E402
from balancer.policy.args import PolicyArgs  # noqa: E402

GIB, MIB = 1 << 30, 1 << 20
SIZES = [(100, 3_000), (1_000, 30_000), (10_000, 300_000)]
QUICK = [(20, 600), (100, 3_000)]
ARGS = {
    "default": PlanArgs(),
    "busy": PlanArgs(policy=PolicyArgs(max_moves_per_tick=50, min_improvement=0.001)),
}


def shared_dir() -> Path:
    """``<repo>/../shared`` (beside the checkout, also in CI), else $BALANCER_SHARED_DIR."""
    beside = Path(__file__).resolve().parents[1].parent / "shared"
    if (beside / "data").is_dir():
        return beside
    env = os.environ.get("BALANCER_SHARED_DIR")
    if env:
        return Path(env)
    raise SystemExit(f"shared data not found at {beside}; set BALANCER_SHARED_DIR")


def planetlab() -> np.ndarray:
    """(1052, 288) CPU % per VM and 5-minute tick."""
    path = shared_dir() / "data" / "planetlab" / "20110303.csv.gz"
    with gzip.open(path, "rt") as f:
        next(f)
        rows = [line.rsplit(",", 288)[1:] for line in f if line.strip()]
    return np.array(rows, dtype=np.float64)


def fleet(n_hosts: int, n_vms: int, traces: np.ndarray, seed: int = 0) -> Snapshot:
    rng = np.random.default_rng(seed)
    bases = [
        BackingFile(
            f"/var/lib/libvirt/images/_base/img{i}.qcow2", "qcow2", 20 * GIB, int(rng.integers(2, 11)) * GIB
        )
        for i in range(10)
    ]
    names = [f"host{i:05d}" for i in range(n_hosts)]
    weight = np.ones(n_hosts)
    hot = rng.choice(n_hosts, size=max(1, n_hosts // 50), replace=False)
    weight[hot] = 2.0
    draining = set(
        rng.choice(np.setdiff1d(np.arange(n_hosts), hot), size=max(1, n_hosts // 100), replace=False).tolist()
    )
    where = rng.choice(n_hosts, size=n_vms, p=weight / weight.sum())
    tick = int(rng.integers(8, traces.shape[1]))
    rows = rng.integers(0, traces.shape[0], size=n_vms)
    vcpus = rng.choice([1, 2, 4, 8], size=n_vms, p=[0.30, 0.35, 0.25, 0.10])
    window = traces[rows][:, tick - 7 : tick + 1]  # 8 ticks: 3 history samples of a 5-sample smoothing
    smooth = np.stack([window[:, i : i + 5].mean(axis=1) for i in range(4)], axis=1) / 100.0  # (V, 4)
    cores = smooth * vcpus[:, None]
    mem = rng.choice([1, 2, 4, 8, 16, 32], size=n_vms, p=[0.15, 0.25, 0.30, 0.20, 0.08, 0.02]) * GIB
    overlay = np.minimum(rng.lognormal(np.log(10), 1.0, size=n_vms), 200) * GIB
    base = rng.integers(0, 10, size=n_vms)
    dirty = rng.exponential(10.0, size=n_vms) * MIB
    vms = []
    for i in range(n_vms):
        b = bases[int(base[i])]
        vms.append(
            VM(
                name=f"vm{i:06d}",
                uuid=f"uuid-{i}",
                host=names[int(where[i])],
                state="running",
                vcpus=int(vcpus[i]),
                memory_bytes=int(mem[i]),
                cpu_cores=float(cores[i, -1]),
                dirty_rate_bytes_s=float(dirty[i]),
                disks=(
                    Disk(
                        "vda",
                        f"/var/lib/libvirt/images/vm{i:06d}.qcow2",
                        "qcow2",
                        100 * GIB,
                        int(overlay[i]),
                        (b,),
                    ),
                ),
            )
        )
    cpu_hist = np.zeros((n_hosts, 3))
    np.add.at(cpu_hist, where, cores[:, 1:])
    mem_used = np.bincount(where, weights=mem.astype(np.float64), minlength=n_hosts)
    hosts = []
    for h, name in enumerate(names):
        held = rng.choice(10, size=4, replace=False)
        hosts.append(
            Host(
                name=name,
                state=HostState.DRAINING if h in draining else HostState.UP,
                cpus=64.0,
                memory_bytes=(512 if rng.random() < 0.2 else 256) * GIB,
                disk_capacity_bytes=4096 * GIB,
                backing_files=tuple(bases[int(j)].path for j in sorted(held)),
                cpu_history=tuple(float(x) for x in cpu_hist[h]),
                memory_history=(float(mem_used[h]),) * 3,
            )
        )
    return Snapshot(taken_at=0.0, hosts=tuple(hosts), vms=tuple(vms))


def measure(snap: Snapshot, args: PlanArgs, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        p = plan(snap, PlannerState(), args, 0.0)
        times.append(time.perf_counter() - t0)
    gc.collect()
    tracemalloc.start()
    plan(snap, PlannerState(), args, 0.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reasons: dict[str, int] = {}
    for m in p.moves:
        reasons[m.reason] = reasons.get(m.reason, 0) + 1
    return {
        "seconds": float(np.median(times)),
        "seconds_min": float(min(times)),
        "peak_mib": peak / MIB,
        "moves": len(p.moves),
        "moves_by_reason": reasons,  # type: ignore[dict-item]
        "skips": len(p.skips),
        "imbalance_before": p.imbalance_before,
        "imbalance_after": p.imbalance_after,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (seconds; CI smoke)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "plan_speed.json")
    opts = ap.parse_args()
    sizes = QUICK if opts.quick else SIZES
    traces = planetlab()
    results = []
    for n_hosts, n_vms in sizes:
        t0 = time.perf_counter()
        snap = fleet(n_hosts, n_vms, traces)
        build = time.perf_counter() - t0
        for name, args in ARGS.items():
            r = measure(snap, args, repeats=1 if n_vms > 100_000 else 3)
            r.update(hosts=n_hosts, vms=n_vms, args=name, build_seconds=build)  # type: ignore[arg-type]
            results.append(r)
            print(
                f"{name:8s} {n_hosts:6d} hosts {n_vms:7d} VMs: plan {r['seconds']:.3f} s, "
                f"peak {r['peak_mib']:.0f} MiB "
                f"(tracemalloc), {r['moves']} moves {r['moves_by_reason']}, imbalance "
                f"{r['imbalance_before']:.4f}→{r['imbalance_after']:.4f}",
                flush=True,
            )
    fits: dict[str, object] = {}
    for name in ARGS:
        rows = [r for r in results if r["args"] == name]
        if len(rows) >= 2:
            x, y = np.log([r["vms"] for r in rows]), np.log([r["seconds"] for r in rows])
            slope = np.polyfit(x, y, 1)[0]
            steps = [float((y[i + 1] - y[i]) / (x[i + 1] - x[i])) for i in range(len(rows) - 1)]
            fits[name] = float(slope)
            fits[f"{name}_steps"] = steps
            per_step = ", ".join(f"{e:.2f}" for e in steps)
            print(f"{name}: time grows as VMs^{slope:.2f} (fit), per step {per_step}")
    target = [r for r in results if r["vms"] == 30_000 and r["args"] == "default"]
    if target:
        print(
            f"goal ≤ 1 s at 1,000 / 30,000: {target[0]['seconds']:.3f} s "
            f"({'met' if target[0]['seconds'] <= 1 else 'MISSED'})"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS {rss:.0f} MiB (includes the snapshots)")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                },
                "quick": opts.quick,
                "results": results,
                "growth_exponent": fits,
                "max_rss_mib": rss,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {opts.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
