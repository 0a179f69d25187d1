"""The simulated cluster: hosts, VMs replaying trace CPU, placement, backing images, and a simulated clock.

Time is simulated only (epoch seconds, starting at the trace's day ``T0``; nothing sleeps). Trace sample
``i`` is the load of interval ``[t0 + i·300 s, t0 + (i+1)·300 s)``; before ``t0`` (warm-up) and after the
last sample the day repeats (sample ``i mod 288``). :meth:`SimCluster.advance` moves the clock forward in
segments over which every load is constant: it stops at each interval boundary and at each event of the
registered :class:`Process` es (the executor's migrations), so every integral below is exact:

* each VM's cumulative CPU time (ns): its trace cores plus migration overhead on the source, which is
  what ``SimSource`` reports as ``cpu_time_ns``;
* per measured interval: host-seconds with the TRUE host CPU load (its VMs' trace cores plus migration
  overhead on both ends) above the mark (``cpu_high`` × cores) and above 100 % of the cores, and the
  time integral of the per-resource std-devs of normalised load (objective.resource_imbalance; memory is
  the VMs' allocated memory).

There is no contention model: VMs get their trace demand even on a host above 100 % of its cores (the
comparison reports how often that happens).

Initial placement (:func:`build`): VMs in decreasing memory order (first-fit decreasing), each on the
first host of a fresh seeded random permutation of the hosts whose memory stays at or under
``placement_fill`` (85 %). CPU plays no part, as with a RAM-only scheduler, so CPU load is imbalanced by
chance and memory as much as random placement under a cap leaves it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from balancer.model import BackingFile, Disk
from balancer.policy import objective
from balancer.sim.args import SimArgs
from balancer.sim.trace import Trace

GIB = 1 << 30
MIB = 1 << 20
T0 = 1299110400.0  # 2011-03-03 00:00:00 UTC, the PlanetLab trace's day
NS_PER_S = 1e9
BASE_DIR = "/var/lib/libvirt/images/_base"
IMAGE_DIR = "/var/lib/libvirt/images"


class Process(Protocol):
    """Something with timed events the clock must stop at (the executor's migrations)."""

    def next_event(self) -> float | None:
        """Time of the next event, or None."""
        ...

    def fire(self, now: float) -> None:
        """Handle every event due at or before ``now``."""
        ...


@dataclass(frozen=True, eq=False)
class Meter:
    """Integrals over the measured intervals (index = trace sample); seconds and host-seconds."""

    covered: np.ndarray  # (T,) seconds of the interval simulated
    over_mark: np.ndarray  # (T, H) seconds each host's true CPU load is above the mark
    over_cores: np.ndarray  # (T,) host-seconds with true CPU load above 100 % of the cores
    sigma: np.ndarray  # (T, 2) ∫ std-dev of normalised cpu / memory load dt


class SimCluster:
    """All mutable state of the simulation; numpy arrays indexed by host and VM number."""

    def __init__(
        self,
        args: SimArgs,
        trace: Trace,
        rows: np.ndarray,
        t0: float,
        cpu_high: float,
        start: float | None = None,
    ) -> None:
        rng = streams(args.seed)
        self.args, self.t0, self.cpu_high = args, t0, cpu_high
        self.sample_seconds = trace.sample_seconds
        n_h, n_v = args.hosts, args.vms
        self.host_names = tuple(f"h{i:03d}" for i in range(1, n_h + 1))
        self.vm_names = tuple(f"vm{i:05d}" for i in range(1, n_v + 1))
        self.vm_uuids = tuple(f"{args.seed & 0xFFFFFFFF:08x}-0000-4000-8000-{i:012x}" for i in range(n_v))
        self.trace_rows = rows
        self.host_cpus = np.full(n_h, float(args.host_cpus))
        self.host_memory = np.full(n_h, int(args.host_memory_gib * GIB), dtype=np.int64)
        self.host_disk = np.full(n_h, int(args.host_disk_gib * GIB), dtype=np.int64)

        self.vcpus = rng[0].choice(np.array(args.vcpu_choices), n_v, p=np.array(args.vcpu_probs))
        per = rng[1].choice(np.array(args.gib_per_vcpu_choices), n_v, p=np.array(args.gib_per_vcpu_probs))
        self.memory = (self.vcpus * per * GIB).astype(np.int64)
        self.memory_used = (self.memory * rng[2].uniform(0.4, 0.9, n_v)).astype(np.int64)
        overlay = args.overlay_median_gib * np.exp(args.overlay_sigma * rng[3].standard_normal(n_v))
        self.overlay = (np.clip(overlay, args.overlay_min_gib, args.overlay_max_gib) * GIB).astype(np.int64)
        shares = np.array([i.share for i in args.images])
        self.image = rng[4].choice(len(args.images), n_v, p=shares)
        self.image_bytes = np.array([int(i.gib * GIB) for i in args.images], dtype=np.int64)
        self.image_paths = tuple(f"{BASE_DIR}/{i.name}.qcow2" for i in args.images)
        dirty = args.dirty_median_mib_s * np.exp(args.dirty_sigma * rng[5].standard_normal(n_v))
        self.dirty = np.clip(dirty, args.dirty_min_mib_s, args.dirty_max_mib_s) * MIB
        self.cores = trace.util[rows] * self.vcpus[:, None]  # (V, T) true demand per interval
        self.disks = tuple(self._disk(v) for v in range(n_v))

        self.placement = place(self.memory, self.host_memory, args.placement_fill, rng[6])
        self.present = np.zeros((n_h, len(args.images)), dtype=bool)
        self.present[self.placement, self.image] = True
        self.cpu_ns = np.zeros(n_v)
        self.vm_overhead = np.zeros(n_v)
        self.host_overhead = np.zeros(n_h)
        self.incoming_memory = np.zeros(n_h, dtype=np.int64)
        self.migrating = np.zeros(n_v, dtype=bool)
        self.now = t0 if start is None else start  # the clock; warm-up starts before t0
        self.processes: list[Process] = []
        t = trace.samples
        self.meter = Meter(np.zeros(t), np.zeros((t, n_h)), np.zeros(t), np.zeros((t, 2)))
        self.host_index = {h: i for i, h in enumerate(self.host_names)}
        self.vm_index = {v: i for i, v in enumerate(self.vm_names)}

    def image_file(self, img: int) -> BackingFile:
        """Base image ``img`` as a file: a qcow2 of ``image_bytes``, twice that virtual size."""
        return BackingFile(
            self.image_paths[img], "qcow2", 2 * int(self.image_bytes[img]), int(self.image_bytes[img])
        )

    def _disk(self, v: int) -> Disk:
        base = self.image_file(int(self.image[v]))
        size = max(20, 2 ** math.ceil(math.log2((int(self.overlay[v]) + base.allocated_bytes) / GIB))) * GIB
        path = f"{IMAGE_DIR}/{self.vm_names[v]}.qcow2"
        return Disk("vda", path, "qcow2", int(size), int(self.overlay[v]), (base,))

    # ------------------------------------------------------------------ reading
    @property
    def n_hosts(self) -> int:
        return len(self.host_names)

    @property
    def n_vms(self) -> int:
        return len(self.vm_names)

    def interval(self, t: float) -> int:
        """Index of the trace interval holding instant ``t`` (negative before ``t0``)."""
        return math.floor((t - self.t0) / self.sample_seconds + 1e-9)

    def demand(self, i: int) -> np.ndarray:
        """(V,) trace cores of interval ``i`` (the day repeats outside it)."""
        return np.asarray(self.cores[:, i % self.cores.shape[1]])

    def vm_cores(self) -> np.ndarray:
        """(V,) cores each VM burns now: trace demand plus migration overhead on the source."""
        return self.demand(self.interval(self.now)) + self.vm_overhead

    def host_cores(self) -> np.ndarray:
        """(H,) true CPU load of each host now, migration overhead included."""
        return np.bincount(self.placement, self.vm_cores(), self.n_hosts) + self.host_overhead

    def host_memory_used(self) -> np.ndarray:
        """(H,) memory allocated to the VMs placed on each host, bytes."""
        return np.bincount(self.placement, self.memory.astype(np.float64), self.n_hosts)

    def memory_free(self) -> np.ndarray:
        """(H,) free memory: capacity − VMs placed − migrations arriving (bytes)."""
        return self.host_memory - self.host_memory_used().astype(np.int64) - self.incoming_memory

    def disk_used(self) -> np.ndarray:
        """(H,) overlays of the VMs placed plus the backing images present, bytes."""
        overlays = np.bincount(self.placement, self.overlay.astype(np.float64), self.n_hosts)
        return (overlays + self.present.astype(np.float64) @ self.image_bytes).astype(np.int64)

    def missing_backing(self, v: int, h: int) -> int:
        """Bytes of VM ``v``'s backing image that host ``h`` lacks."""
        img = int(self.image[v])
        return 0 if self.present[h, img] else int(self.image_bytes[img])

    # ------------------------------------------------------------------ clock
    def advance(self, to: float) -> None:
        """Run the clock to ``to``, stopping at interval boundaries and at every process event."""
        if to < self.now - 1e-6:
            raise ValueError(f"the simulated clock is at {self.now}; cannot go back to {to}")
        while True:
            due = min((t for p in self.processes if (t := p.next_event()) is not None), default=math.inf)
            if due <= self.now + 1e-9:
                for p in self.processes:
                    p.fire(self.now)
                continue
            if self.now >= to:
                return
            boundary = self.t0 + (self.interval(self.now) + 1) * self.sample_seconds
            stop = min(to, boundary, due)
            self._integrate(stop - self.now)
            self.now = stop

    def _integrate(self, dt: float) -> None:
        i = self.interval(self.now)
        vm = self.demand(i) + self.vm_overhead
        self.cpu_ns += vm * (dt * NS_PER_S)
        m = self.meter
        if not 0 <= i < m.covered.shape[0]:
            return
        host = np.bincount(self.placement, vm, self.n_hosts) + self.host_overhead
        m.covered[i] += dt
        m.over_mark[i] += dt * (host > self.cpu_high * self.host_cpus * (1 + objective.EPS))
        m.over_cores[i] += dt * float(np.count_nonzero(host > self.host_cpus * (1 + objective.EPS)))
        used = np.stack([host, self.host_memory_used(), np.zeros(self.n_hosts)], axis=1)
        cap = np.stack([self.host_cpus, self.host_memory.astype(np.float64), np.ones(self.n_hosts)], axis=1)
        load = objective.loads(used, cap)
        m.sigma[i] += dt * objective.resource_imbalance(load, np.ones(self.n_hosts, dtype=bool))

    # ------------------------------------------------------------------ migrations
    def begin_migration(self, v: int, target: int) -> None:
        """A migration of ``v`` to ``target`` starts now: overhead on both ends, memory reserved there."""
        self.migrating[v] = True
        self.vm_overhead[v] += self.args.migration_overhead_cores
        self.host_overhead[target] += self.args.migration_overhead_cores
        self.incoming_memory[target] += self.memory[v]

    def end_migration(self, v: int, target: int, succeeded: bool) -> None:
        """The migration ends now; on success the VM (and its backing image) is on ``target``."""
        self.migrating[v] = False
        self.vm_overhead[v] = max(0.0, self.vm_overhead[v] - self.args.migration_overhead_cores)
        self.host_overhead[target] = max(0.0, self.host_overhead[target] - self.args.migration_overhead_cores)
        self.incoming_memory[target] -= self.memory[v]
        if succeeded:
            self.placement[v] = target
            self.present[target, self.image[v]] = True


def streams(seed: int) -> list[np.random.Generator]:
    """Independent random streams, one per draw (sizes, memory, disks, ..., placement, trace rows)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)]


def place(memory: np.ndarray, capacity: np.ndarray, fill: float, rng: np.random.Generator) -> np.ndarray:
    """First-fit decreasing by memory over a fresh random host order per VM (seeded); (V,) host index."""
    used = np.zeros(capacity.shape[0], dtype=np.int64)
    limit = capacity * fill
    out = np.full(memory.shape[0], -1, dtype=np.int64)
    for v in np.argsort(-memory, kind="stable").tolist():
        order = rng.permutation(capacity.shape[0])
        fits = order[used[order] + memory[v] <= limit[order]]
        if fits.size == 0:
            raise ValueError(
                f"VM {v} ({memory[v] / GIB:.0f} GiB) fits on no host under {fill:.0%} of memory: "
                "too few hosts for these VMs"
            )
        out[v] = fits[0]
        used[fits[0]] += memory[v]
    return out


def build(
    args: SimArgs, trace: Trace, t0: float = T0, cpu_high: float = 0.8, start: float | None = None
) -> SimCluster:
    """A seeded cluster with its clock at ``start`` (default ``t0``); each VM replays a distinct trace row
    (rows repeat only when VMs outnumber them)."""
    rng = streams(args.seed)[8]
    n_rows = trace.util.shape[0]
    rows = rng.choice(n_rows, args.vms, replace=args.vms > n_rows)
    return SimCluster(args, trace, rows, t0, cpu_high, start)
