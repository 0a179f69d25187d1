"""Real VM CPU traces: one day of PlanetLab CPU utilisation, 288 five-minute samples per VM (percent).

The data (``/work/shared/data/planetlab/20110303.csv.gz``, 1052 VMs, 2011-03-03) is CoMon monitoring of
PlanetLab as shipped with CloudSim and used by A. Beloglazov and R. Buyya, "Optimal online deterministic
algorithms and adaptive heuristics for energy and performance efficient dynamic consolidation of virtual
machines in cloud data centers", Concurrency and Computation: Practice and Experience 24(13):1397-1420,
2012. Cite that paper with any result computed on it.

A sample is the VM's CPU utilisation in percent of its vCPUs over one 5-minute interval; the simulator
turns it into cores as ``vcpus × percent / 100``. The median lag-1 autocorrelation of a VM's series is
only about 0.05 (:func:`lag1_autocorrelation`): one sample says little about the next.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PLANETLAB = Path("/work/shared/data/planetlab/20110303.csv.gz")
SAMPLE_SECONDS = 300.0  # one trace sample = 5 minutes
CITATION = (
    "A. Beloglazov and R. Buyya, Optimal online deterministic algorithms and adaptive heuristics for "
    "energy and performance efficient dynamic consolidation of virtual machines in cloud data centers, "
    "Concurrency and Computation: Practice and Experience 24(13):1397-1420, 2012 "
    "(PlanetLab/CoMon traces of 2011-03-03, as shipped with CloudSim)"
)


@dataclass(frozen=True, eq=False)
class Trace:
    """CPU utilisation per VM and sample, as fractions (0..1) of the VM's vCPUs."""

    names: tuple[str, ...]
    util: np.ndarray  # (N, T) float64 in [0, 1]
    sample_seconds: float = SAMPLE_SECONDS

    @property
    def samples(self) -> int:
        return int(self.util.shape[1])


def load(path: Path = PLANETLAB) -> Trace:
    """Read a trace file: gzip CSV, column ``vm`` then one integer percent column per sample."""
    with gzip.open(path, "rt", newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        if not header or header[0] != "vm":
            raise ValueError(f"{path}: first column must be 'vm', got {header[:1]}")
        names, values = [], []
        for row in rows:
            names.append(row[0])
            values.append([float(x) for x in row[1:]])
    util = np.array(values, dtype=np.float64) / 100.0
    if util.ndim != 2 or util.shape[1] != len(header) - 1:
        raise ValueError(f"{path}: rows have differing lengths")
    return Trace(tuple(names), np.clip(util, 0.0, 1.0))


def lag1_autocorrelation(series: np.ndarray) -> np.ndarray:
    """(N,) lag-1 autocorrelation of each row (0 for a constant row)."""
    x = series - series.mean(axis=1, keepdims=True)
    den = (x * x).sum(axis=1)
    num = (x[:, 1:] * x[:, :-1]).sum(axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


#: seed of the fixed split of a trace's VMs into two disjoint halves (``halves``): policies are tuned on
#: ``"tune"`` and reported on ``"held_out"``, so no reported figure comes from VMs the defaults were chosen on
SPLIT_SEED = 2011


def halves(trace: Trace, seed: int = SPLIT_SEED) -> dict[str, Trace]:
    """The trace's VMs split at random (``seed``) into two disjoint halves, ``tune`` and ``held_out``."""
    order = np.random.default_rng(seed).permutation(trace.util.shape[0])
    cut = order.size // 2
    out = {}
    for name, rows in (("tune", np.sort(order[:cut])), ("held_out", np.sort(order[cut:]))):
        out[name] = Trace(tuple(trace.names[i] for i in rows), trace.util[rows], trace.sample_seconds)
    return out


def shifted(trace: Trace, samples: int) -> Trace:
    """The same day starting ``samples`` later (wrapping round): sample ``i`` is the original ``i + samples``.

    The simulator's warm-up replays the samples before the start (the day's end, for an unshifted day,
    which never preceded its start in reality); a shifted day is warmed up on the real samples before it.
    """
    return Trace(trace.names, np.roll(trace.util, -samples, axis=1), trace.sample_seconds)
