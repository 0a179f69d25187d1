"""Knobs of planning (config sections ``thresholds``, ``policy`` and ``rules``).

These are pydantic models so config.py can compose them and validate them at
load; the planner itself reads them as plain frozen values.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdArgs(_Frozen):
    """When a host counts as overloaded and when the cluster counts as balanced."""

    cpu_high: float = Field(0.80, gt=0, le=1.0, description="CPU high-water mark (used / usable cores).")
    memory_high: float = Field(
        0.85, gt=0, le=1.0, description="Memory high-water mark (used / usable bytes)."
    )
    disk_high: float = Field(0.90, gt=0, le=1.0, description="Disk hard limit for VM images on a target.")
    target_imbalance: float = Field(
        0.05,
        ge=0,
        le=1.0,
        description="Balance moves stop once the imbalance (std-dev of load) is at or below.",
    )
    hold_ticks: int = Field(
        3, ge=1, le=1000, description="An overload counts only after it persisted this many ticks (smoothed)."
    )
    cpu_reserve_cores: float = Field(0.0, ge=0, description="Cores per host kept for the host itself.")
    memory_reserve_mib: int = Field(0, ge=0, description="Memory per host kept for the host itself, MiB.")


class PolicyArgs(_Frozen):
    """How aggressively the planner moves VMs."""

    # 0.03, not the 10 % peers use: one move changes only 2 hosts' loads, so its relative cut of the
    # std-dev shrinks as 1 / hosts; at 50 hosts no move ever clears 10 % (bench/sim_sweep.py: the
    # balance goal never ran in 288 ticks). 3 % (with cpu_burst_sigmas) beat the std-dev what-if.
    min_improvement: float = Field(
        0.03,
        ge=0,
        le=1.0,
        description="A balance move must cut the imbalance by at least this fraction (~1.5 / hosts).",
    )
    # Balance only: drains, repairs and hotspot relief are complete every tick (the executor's limits
    # pace them). Balance is an optional improvement chosen greedily on a picture that is stale within
    # minutes, so each tick plans about what the executor can start before the next one, more in a
    # larger fleet (its per-host limits let more run at once).
    max_moves_per_tick: int = Field(
        4,
        ge=0,
        le=10000,
        description="Balance moves planned per tick per 100 active hosts (started); drains, repairs and "
        "hotspot relief are never capped.",
    )
    cooldown_minutes: float = Field(
        60.0, ge=0, description="A VM that moved is not moved again for this long (anti ping-pong)."
    )
    quarantine_minutes: float = Field(
        120.0, ge=0, description="A VM whose migration failed is left alone for this long."
    )
    # Room for bursts: sampled every few minutes, real VMs' CPU is nearly independent from one sample
    # to the next, so a host crosses the mark by the spikes of its VMs around their means. Planning
    # with mean + k·σ keeps bursty VMs apart and leaves steady ones packed (bench/sim_sweep.py).
    cpu_burst_sigmas: float = Field(
        0.5,
        ge=0,
        le=10,
        description="Plan a VM's CPU as its mean plus this many standard deviations (cpu_std_cores).",
    )
    cpu_weight: float = Field(1.0, ge=0, description="Weight of CPU in the combined imbalance.")
    memory_weight: float = Field(1.0, ge=0, description="Weight of memory in the combined imbalance.")
    memory_resend_cap: float = Field(
        3.0, ge=1.0, description="Most RAM the cost model assumes a converging migration sends, x RAM size."
    )


class AffinityRule(_Frozen):
    """VMs kept on one host (affinity) or on distinct hosts (anti-affinity)."""

    name: str = Field(..., min_length=1, description="Rule name, shown in reasons.")
    vms: tuple[str, ...] = Field(..., min_length=2, description="VM names the rule binds.")


class PinRule(_Frozen):
    """A VM allowed only on the listed hosts."""

    vm: str = Field(..., min_length=1)
    hosts: tuple[str, ...] = Field(..., min_length=1)


class LabelRule(_Frozen):
    """VMs matching ``vms`` (names or fnmatch patterns) must/should run on hosts with these labels."""

    vms: tuple[str, ...] = Field(..., min_length=1)
    labels: dict[str, str] = Field(..., min_length=1)
    required: bool = Field(True, description="true: must (hard); false: should (preferred).")


class RulesArgs(_Frozen):
    """Placement rules from config; domains can add their own in libvirt <metadata>."""

    affinity: tuple[AffinityRule, ...] = ()
    anti_affinity: tuple[AffinityRule, ...] = ()
    pins: tuple[PinRule, ...] = ()
    host_labels: tuple[LabelRule, ...] = ()
    exclude_vms: tuple[str, ...] = Field((), description="VM names or fnmatch patterns never moved.")
    exclude_hosts: tuple[str, ...] = Field((), description="Hosts never used as a target, nor drained.")

    @field_validator("pins")
    @classmethod
    def _one_pin_per_vm(cls, pins: tuple[PinRule, ...]) -> tuple[PinRule, ...]:
        seen: set[str] = set()
        for p in pins:
            if p.vm in seen:
                raise ValueError(f"VM {p.vm!r} is pinned twice; merge its hosts into one pin")
            seen.add(p.vm)
        return pins
