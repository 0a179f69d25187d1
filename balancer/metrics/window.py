"""Pure: per-VM and per-host rolling state over the last samples, and the smoothed loads it yields.

Smoothing is the mean of the last ``window`` samples. A mean keeps loads additive (a host's load is
the sum of its VMs', before and after a move), and it damps a one-sample spike of height ``s`` over
a flat level ``f`` to at most ``f + (s - f) / window``, for at most ``window`` ticks; the planner's
"hot for N ticks" check (:func:`hot_streak` over ``Host.cpu_history``) then ignores it whenever
N > window or the damped value stays below the mark.

CPU: a rate in cores = Δ cpu_time_ns / 1e9 / Δ sampled_at between two polls of the same VM on the
same host. There is no rate on a VM's first poll, after its counter went backwards (restart) or when
the hypervisor reports no CPU time: nothing is added to its window then, and a VM with an empty window
reports 0.0 cores. A VM seen on a new host (it migrated) starts from the window it had on the old
host, so its load follows it; only the counter baseline restarts. VMs that are not running or
blocked add 0.0 cores (their CPU time does not advance; the test driver's would).

Spread: the same CPU rates are also kept over the last ``spread`` samples (a longer series than the
window), and their population standard deviation is the VM's CPU spread (``VM.cpu_std_cores``). The
planner keeps room for part of it (``policy.cpu_burst_sigmas``): on 5-minute samples of real VMs the
rates are close to independent from one sample to the next (PlanetLab traces, lag-1 autocorrelation
0.05), so a host's chance to cross the mark depends on how bursty its VMs are, not only on their mean.
With fewer than two rates the spread is 0.0.

History features (for the planner's forecast, ``policy/forecast.py``), over the same spread rates:
their mean (``cpu_history_cores``), how many there are (``cpu_samples``; ``cpu_window_samples`` counts
the rates in the smoothing window) and the sample-to-sample noise ``cpu_noise_cores`` = √(Σ (x_t −
x_{t−1})² / (2 (n − 1))), von Neumann's successive-difference estimate of the standard deviation. For
independent samples it equals the spread; a step of the VM's level (a job starting) inflates the
spread for as long as the step is in the window, but adds only one difference to the noise. So noise
much smaller than spread means a level that moves (persistent load); noise close to spread, a level
that holds under independent noise.

Memory: each poll adds the VM's used bytes (absolute, so it counts from the first poll).

Hosts: every successful poll appends the sums of the host's VMs' smoothed CPU and memory to its
history (newest last, at most ``history`` long). A host that failed keeps its history, its last node
data and its VMs' windows unchanged until it answers again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from balancer.metrics.source import HostSample, NodeSample, VMSample

NS_PER_S = 1e9


@dataclass(frozen=True)
class VMWindow:
    """The recent samples of one VM on one host."""

    host: str
    uuid: str
    cpu: tuple[float, ...] = ()  # CPU rates, cores, oldest first (the smoothing window)
    spread: tuple[float, ...] = ()  # the same rates over the longer spread window
    memory: tuple[float, ...] = ()  # used bytes, oldest first
    cpu_time_ns: int | None = None  # baseline of the next rate
    sampled_at: float | None = None  # source clock of that baseline

    @property
    def cpu_cores(self) -> float:
        return mean(self.cpu)

    @property
    def cpu_std_cores(self) -> float:
        return pstdev(self.spread)

    @property
    def cpu_history_cores(self) -> float:
        return mean(self.spread)

    @property
    def cpu_noise_cores(self) -> float:
        return successive_noise(self.spread)

    @property
    def memory_used_bytes(self) -> float:
        return mean(self.memory)


@dataclass(frozen=True)
class HostWindow:
    """A host's smoothed totals per successful tick (newest last) and the last node data it reported."""

    cpu_history: tuple[float, ...] = ()
    memory_history: tuple[float, ...] = ()
    node: NodeSample | None = None


@dataclass(frozen=True)
class WindowState:
    """Everything smoothing remembers between ticks; replaced, never mutated."""

    vms: Mapping[tuple[str, str], VMWindow] = field(default_factory=dict)  # (host, uuid) →
    hosts: Mapping[str, HostWindow] = field(default_factory=dict)

    def vm(self, host: str, uuid: str) -> VMWindow | None:
        return self.vms.get((host, uuid))


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def pstdev(values: Sequence[float]) -> float:
    """Population standard deviation; 0.0 for fewer than two values. (Plain floats: statistics.pstdev
    is exact but ~25× slower, and it runs for every VM on every tick.)"""
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((x - m) ** 2 for x in values) / len(values))


def successive_noise(values: Sequence[float]) -> float:
    """√(Σ (x_t − x_{t−1})² / (2 (n − 1))): the standard deviation of independent noise around a level,
    not inflated by steps of the level; 0.0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    return math.sqrt(sum((b - a) ** 2 for a, b in itertools.pairwise(values)) / (2 * (len(values) - 1)))


def push(values: tuple[float, ...], value: float, size: int) -> tuple[float, ...]:
    """``values`` with ``value`` appended, keeping the newest ``size``."""
    return (*values, value)[-size:] if size > 0 else ()


def cpu_rate(prev_ns: int | None, prev_at: float | None, ns: int | None, at: float) -> float | None:
    """Cores used between two readings of a CPU-time counter; None when there is no valid pair."""
    if prev_ns is None or prev_at is None or ns is None or ns < prev_ns or at <= prev_at:
        return None
    return (ns - prev_ns) / NS_PER_S / (at - prev_at)


def observe_vm(
    prev: VMWindow | None, host: str, sample: VMSample, sampled_at: float, window: int, spread: int = 0
) -> VMWindow:
    """The VM's window after one more poll; ``prev`` may come from another host (then no rate)."""
    prev = prev or VMWindow(host=host, uuid=sample.uuid)
    same_host = prev.host == host
    # The rate divides by the time between the two counter readings: a counter read per domain after
    # the bulk call carries its own reading time (back-to-back polls read a one-core VM as 0.14-2.6 cores).
    sampled_at = sample.cpu_sampled_at if sample.cpu_sampled_at is not None else sampled_at
    rate: float | None = 0.0  # a VM that is not running adds 0.0 cores
    if sample.accrues_cpu:
        rate = None
        if same_host:
            rate = cpu_rate(prev.cpu_time_ns, prev.sampled_at, sample.cpu_time_ns, sampled_at)
    cpu, spread_rates = prev.cpu, prev.spread
    if rate is not None:
        cpu, spread_rates = push(cpu, rate, window), push(spread_rates, rate, spread)
    return VMWindow(
        host=host,
        uuid=sample.uuid,
        cpu=cpu[-window:],
        spread=spread_rates[-spread:] if spread > 0 else (),
        memory=push(prev.memory, float(sample.memory_used_bytes), window),
        cpu_time_ns=sample.cpu_time_ns,
        sampled_at=sampled_at,
    )


def advance(
    state: WindowState, samples: Sequence[HostSample], window: int, history: int, spread: int = 0
) -> WindowState:
    """Fold one tick's samples into the state. Hosts and VMs no longer reported are forgotten."""
    by_uuid: dict[str, VMWindow] = {}
    for w in state.vms.values():
        by_uuid.setdefault(w.uuid, w)  # where a VM seen on a new host comes from
    vms: dict[tuple[str, str], VMWindow] = {}
    hosts: dict[str, HostWindow] = {}
    for s in samples:
        prev_host = state.hosts.get(s.name, HostWindow())
        if not s.ok:
            hosts[s.name] = prev_host
            vms.update({k: w for k, w in state.vms.items() if k[0] == s.name})
            continue
        cpu_total = memory_total = 0.0
        for v in s.vms:
            prev = state.vm(s.name, v.uuid) or by_uuid.get(v.uuid)
            w = observe_vm(prev, s.name, v, s.sampled_at, window, spread)
            vms[(s.name, v.uuid)] = w
            cpu_total += w.cpu_cores
            memory_total += w.memory_used_bytes
        hosts[s.name] = HostWindow(
            cpu_history=push(prev_host.cpu_history, cpu_total, history),
            memory_history=push(prev_host.memory_history, memory_total, history),
            node=s.node,
        )
    return WindowState(vms=vms, hosts=hosts)


def hot_streak(history: Sequence[float], mark: float) -> int:
    """How many of the newest entries in a row are above ``mark`` ("hot for N ticks")."""
    n = 0
    for value in reversed(history):
        if value <= mark:
            break
        n += 1
    return n
