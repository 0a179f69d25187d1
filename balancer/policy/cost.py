"""Bytes a live block migration copies, per VM and target, and the seconds that takes at the bandwidth cap.

Model (all in bytes):

* disk = the allocated bytes of the VM's own top images. With a backing chain the executor pre-creates
  an overlay on the target and libvirt copies only the overlay (``copy_mode="incremental"``); without a
  chain the whole (flat) disk is copied (``"full"``); either way it is ``disk_allocated_bytes``.
* backing = the allocated bytes of each distinct backing file the target lacks (``host.backing_files``,
  plus files a move planned or in flight already brings there). This is the only target-dependent term,
  so a target that already holds the chain is cheaper and is preferred by every goal.
* memory = RAM × re-send factor. Pre-copy sends RAM, then what was dirtied meanwhile, and so on: a
  geometric series 1 + ρ + ρ² + … = 1 / (1 − ρ) with ρ = dirty rate ÷ bandwidth cap, capped at
  ``memory_resend_cap``. A dirty rate of 0 means unknown (TCG) and gives 1. ρ ≥ 1 never converges: the
  factor is the cap and ``converges`` is False.
* seconds = total bytes ÷ bandwidth cap (the per-migration cap the executor sets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from balancer.model import MoveCost
from balancer.policy.arrays import MIB, ClusterArrays


def resend_factor(dirty_bytes_s: np.ndarray, bandwidth_bytes_s: float, cap: float) -> np.ndarray:
    """RAM multiplier per VM: 1/(1 − dirty/bw) capped at ``cap``; 1 when the dirty rate is unknown (0)."""
    rho = np.asarray(dirty_bytes_s, dtype=np.float64) / bandwidth_bytes_s
    with np.errstate(divide="ignore"):
        series = np.where(rho < 1.0, 1.0 / np.maximum(1.0 - rho, 1e-12), cap)
    return np.where(rho <= 0.0, 1.0, np.minimum(series, cap))


@dataclass(frozen=True, eq=False)
class VMCosts:
    """The target-independent part of every VM's move cost."""

    bandwidth_bytes_s: float
    disk: np.ndarray  # (V,) overlay (or flat disk) bytes
    memory: np.ndarray  # (V,) RAM bytes including predicted re-sends
    converges: np.ndarray  # (V,) bool
    has_chain: np.ndarray  # (V,) bool: incremental copy onto a pre-created overlay
    base: np.ndarray  # (V,) bytes of a move onto a target that already holds the VM's backing files

    @classmethod
    def of(cls, arr: ClusterArrays, bandwidth_mib_s: int, resend_cap: float) -> VMCosts:
        bw = float(bandwidth_mib_s) * MIB
        disk = arr.demand[:, 2].copy()
        memory = np.floor(arr.demand[:, 1] * resend_factor(arr.dirty, bw, resend_cap))
        return cls(
            bandwidth_bytes_s=bw,
            disk=disk,
            memory=memory,
            converges=arr.dirty < bw,
            has_chain=np.array([p.size > 0 for p in arr.chains], dtype=bool)[arr.chain],
            base=disk + memory,
        )

    def move_cost(self, v: int, backing_bytes: float) -> MoveCost:
        """The MoveCost of moving VM ``v`` onto a target that lacks ``backing_bytes`` of its chain."""
        disk, mem, back = int(self.disk[v]), int(self.memory[v]), int(backing_bytes)
        return MoveCost(
            disk_bytes=disk,
            backing_bytes=back,
            memory_bytes=mem,
            seconds=(disk + mem + back) / self.bandwidth_bytes_s,
            copy_mode="incremental" if self.has_chain[v] else "full",
            converges=bool(self.converges[v]),
        )


def missing_bytes(present: np.ndarray, path_bytes: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """(H,) bytes of the backing files ``paths`` each host lacks."""
    if paths.size == 0:
        return np.zeros(present.shape[0])
    return (~present[:, paths]).astype(np.float64) @ path_bytes[paths]
