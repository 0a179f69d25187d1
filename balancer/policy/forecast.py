"""Pure: each VM's expected CPU over the time a move stands, and how sure that is, from its own history.

Inputs per VM (the snapshot's history features, metrics/window.py): the recent mean ``m_R`` of the last
``w`` rates (``cpu_cores``, ``cpu_window_samples``), the mean ``m_L`` of the last ``n ≥ w`` rates
(``cpu_history_cores``, ``cpu_samples``) and the sample noise ``σ`` (``cpu_noise_cores``, from successive
differences, so a step of the level does not count as noise).

Model: the rate is a level plus independent noise of standard deviation σ; the level may step or drift.
If it held still over the last n samples, the best estimate of it is the long mean m_L, whose error
variance is σ²/n; the recent mean differs from it only by noise, ``d = m_R − m_L`` of variance
``D = σ² (1/w − 1/n)``. A real change of the level adds to d what noise cannot explain. So the forecast
trusts the recent mean only as far as d exceeds the noise (positive-part shrinkage, as in empirical Bayes):

    level = m_L + β d,   β = max(0, 1 − D / d²)

A noisy VM whose recent mean jumped by a spike (d² ≲ D) is forecast at its long mean: its spike is no
reason to move it. A VM whose level moved (d² ≫ D, persistent load) is forecast at its recent mean,
without the lag of a long window. Between the two the weight slides with the evidence; in effect each
VM's smoothing window grows from w to n with its noise. The error variance of the level is
``σ²/n + β D`` (the long mean's error, plus the shrunk estimate's (d² − D)·D/d² when it moved).

Room for bursts uses σ too (not the spread over the window, which counts a step of the level as spread):
a host crosses its mark through its VMs' noise around their levels.

A VM without history (``cpu_samples`` 0: an older snapshot, or its first tick) is forecast at ``cpu_cores``
with no error and its ``cpu_std_cores`` as its noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from balancer.model import VM


@dataclass(frozen=True, eq=False)
class Forecast:
    """Per VM, cores: the level expected over the horizon, its error variance, the sample noise."""

    level: np.ndarray  # (V,) cores
    error: np.ndarray  # (V,) cores², variance of the level estimate
    noise: np.ndarray  # (V,) cores, standard deviation of one sample around the level
    trust: np.ndarray  # (V,) β in [0, 1]: the weight of the recent mean
    spread: np.ndarray  # (V,) cores, standard deviation over the whole window (noise and level moves)

    @classmethod
    def of(cls, vms: Sequence[VM]) -> Forecast:
        recent = np.array([v.cpu_cores for v in vms], dtype=np.float64)
        w = np.array([v.cpu_window_samples for v in vms], dtype=np.float64)
        long = np.array([v.cpu_history_cores for v in vms], dtype=np.float64)
        n = np.array([v.cpu_samples for v in vms], dtype=np.float64)
        noise = np.array([v.cpu_noise_cores for v in vms], dtype=np.float64)
        std = np.array([v.cpu_std_cores for v in vms], dtype=np.float64)
        return levels(recent, w, long, n, noise, std)


def levels(
    recent: np.ndarray, w: np.ndarray, long: np.ndarray, n: np.ndarray, noise: np.ndarray, std: np.ndarray
) -> Forecast:
    """The forecast from the history features as arrays (see the module docstring)."""
    known = n >= 2
    w = np.clip(w, 1.0, None)
    n_eff = np.maximum(n, w)
    d = np.where(known, recent - long, 0.0)
    var = noise * noise
    spread_d = var * np.clip(1.0 / w - 1.0 / n_eff, 0.0, None)  # D: d's variance from noise alone
    d2 = d * d
    beyond = d2 > spread_d  # only there is D / d² (< 1) used: dividing elsewhere overflowed on tiny d²
    beta = np.where(beyond, 1.0 - np.divide(spread_d, d2, out=np.ones_like(d2), where=beyond), 0.0)
    beta = np.where(known, np.clip(beta, 0.0, 1.0), 1.0)
    level = np.where(known, long + beta * d, recent)
    error = np.where(known, var / np.maximum(n_eff, 1.0) + beta * spread_d, 0.0)
    return Forecast(
        level=np.maximum(level, 0.0),
        error=error,
        noise=np.where(known, noise, std),
        trust=beta,
        spread=std,
    )
