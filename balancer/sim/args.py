"""Knobs of the simulated cluster: its size, the seeded distributions VMs are drawn from, migration overhead.

Defaults (the policy comparison's cluster; every draw comes from ``seed``):

* hosts: ``host_cpus`` 14 usable cores, ``host_memory_gib`` 384 GiB, ``host_disk_gib`` 8192 GiB each. With
  the default VM mix that is about 3.9 vCPUs per core and 61 % of memory allocated; the PlanetLab day
  then loads the cluster's CPUs to 46 % on average (42-49 % hour by hour; seed 1).
* vCPUs per VM from {1, 2, 4, 8} with probabilities {0.30, 0.35, 0.25, 0.10} (mean 2.8).
* memory per vCPU from {2, 4, 8} GiB with probabilities {0.30, 0.50, 0.20} (mean 4.2 GiB; VM mean 11.8 GiB).
  Guest-used memory is uniform in 40-90 % of it (informational: the planner's demand is the allocation).
* disk: one qcow2 overlay per VM on a shared backing image; overlay allocation lognormal with median
  ``overlay_median_gib`` 8 GiB and sigma 0.9 (mean 12 GiB), clipped to [0.5, 80] GiB. Backing images:
  debian-12 2.0 GiB (35 %), ubuntu-22.04 2.5 GiB (30 %), rocky-9 1.8 GiB (20 %), windows-2022 12 GiB (15 %).
* memory dirty rate lognormal, median 4 MiB/s, sigma 1.0, clipped to [0.5, 60] MiB/s: under the default
  100 MiB/s cap every VM converges, RAM is re-sent 1.04× at the median (cost.py's geometric series).
* CPU: each VM replays one PlanetLab VM's day (drawn without replacement while there are enough rows),
  as ``vcpus × percent / 100`` cores.
* migration overhead: while a VM migrates, ``migration_overhead_cores`` (0.1 core) extra on the source (in
  the VM's own CPU-time counter: QEMU's migration thread runs in the VM's cgroup) and the same on the
  target (the incoming QEMU receiving; host load only, no domain reports it yet).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Image(BaseModel):
    """A shared backing image: name, allocated size, share of the VMs built on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    gib: float = Field(..., gt=0)
    share: float = Field(..., ge=0, le=1)


class SimArgs(BaseModel):
    """A simulated cluster of ``hosts`` identical hosts and ``vms`` VMs, all drawn from ``seed``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: int = Field(50, ge=2, le=10_000, description="Hosts in the cluster.")
    vms: int = Field(1000, ge=1, le=1_000_000, description="VMs in the cluster.")
    seed: int = Field(1, description="Seed of every draw: sizes, traces, disks, placement.")
    host_cpus: int = Field(14, ge=1, description="Usable cores per host.")
    host_memory_gib: float = Field(384.0, gt=0, description="Memory per host, GiB.")
    host_disk_gib: float = Field(8192.0, gt=0, description="Storage for VM images per host, GiB.")
    vcpu_choices: tuple[int, ...] = Field((1, 2, 4, 8), description="vCPUs a VM may have.")
    vcpu_probs: tuple[float, ...] = Field((0.30, 0.35, 0.25, 0.10), description="Their probabilities.")
    gib_per_vcpu_choices: tuple[float, ...] = Field((2.0, 4.0, 8.0), description="Memory GiB per vCPU.")
    gib_per_vcpu_probs: tuple[float, ...] = Field((0.30, 0.50, 0.20), description="Their probabilities.")
    overlay_median_gib: float = Field(8.0, gt=0, description="Median allocation of a VM's disk overlay.")
    overlay_sigma: float = Field(0.9, ge=0, description="Lognormal sigma of the overlay allocation.")
    overlay_min_gib: float = Field(0.5, gt=0)
    overlay_max_gib: float = Field(80.0, gt=0)
    images: tuple[Image, ...] = Field(
        (
            Image(name="debian-12", gib=2.0, share=0.35),
            Image(name="ubuntu-22.04", gib=2.5, share=0.30),
            Image(name="rocky-9", gib=1.8, share=0.20),
            Image(name="windows-2022", gib=12.0, share=0.15),
        ),
        min_length=1,
        description="Shared backing images.",
    )
    dirty_median_mib_s: float = Field(4.0, ge=0, description="Median memory dirty rate, MiB/s.")
    dirty_sigma: float = Field(1.0, ge=0)
    dirty_min_mib_s: float = Field(0.5, ge=0)
    dirty_max_mib_s: float = Field(60.0, ge=0)
    placement_fill: float = Field(
        0.85, gt=0, le=1.0, description="Initial placement keeps each host's memory at or under this share."
    )
    migration_overhead_cores: float = Field(
        0.1, ge=0, description="Extra cores on the source and on the target while a migration runs."
    )

    @model_validator(mode="after")
    def _distributions(self) -> SimArgs:
        pairs = (
            ("vcpu", self.vcpu_choices, self.vcpu_probs),
            ("gib_per_vcpu", self.gib_per_vcpu_choices, self.gib_per_vcpu_probs),
            ("images", self.images, tuple(i.share for i in self.images)),
        )
        for name, choices, probs in pairs:
            if len(choices) != len(probs) or not choices:
                raise ValueError(f"{name}: {len(choices)} choices but {len(probs)} probabilities")
            if abs(sum(probs) - 1.0) > 1e-9:
                raise ValueError(f"{name}: probabilities sum to {sum(probs):g}, not 1")
        if self.overlay_min_gib > self.overlay_max_gib:
            raise ValueError("overlay_min_gib is above overlay_max_gib")
        return self


def default_sim_args(**overrides: object) -> SimArgs:
    """Every default, with ``overrides`` (validated)."""
    return SimArgs.model_validate(overrides)
