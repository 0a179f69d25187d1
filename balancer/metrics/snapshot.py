"""Pure: one tick's samples + the advanced window state → :class:`Snapshot`.

Call :func:`window.advance` with the same samples first; this module only reads the state.

* Hosts keep the samples' order. A host that answered is UP; one that did not is DOWN with
  ``error`` = its CollectError (kind, libvirt text and code), its last known node data and history,
  and none of its VMs (nothing about them is current). MAINTENANCE and DRAINING are the service's to
  set (``dataclasses.replace``); collection does not know about drains.
* Capacity: the endpoint's overrides, else what the node reports (CPUs, memory, the sum of its active
  storage pools). With a disk override the free disk is the override minus what the pools use.
* ``backing_files``: every volume path in the host's active pools plus every backing file its own
  VMs use, sorted.
* VMs: per host sorted by name; ``cpu_cores`` and ``memory_used_bytes`` smoothed (see window.py),
  ``memory_bytes`` as held now (not smoothed: it is a reservation, not a load).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from balancer.metrics.source import HostSample, NodeSample
from balancer.metrics.window import HostWindow, WindowState
from balancer.model import VM, Host, HostState, Snapshot


def build_snapshot(samples: Sequence[HostSample], state: WindowState, now: float) -> Snapshot:
    """The Snapshot of one tick taken at ``now`` (epoch seconds)."""
    hosts = []
    vms: list[VM] = []
    for s in samples:
        hw = state.hosts.get(s.name, HostWindow())
        host_vms = _vms(s, state) if s.ok else []
        hosts.append(_host(s, hw, host_vms))
        vms += host_vms
    return Snapshot(taken_at=now, hosts=tuple(hosts), vms=_one_copy_each(vms))


def _one_copy_each(vms: list[VM]) -> tuple[VM, ...]:
    """Keep one VM per UUID: while a migration runs, the target shows a paused incoming copy.

    The running copy is the VM (the source until switch-over, the target after; the first one
    seen when none runs). A VM seen twice is in flight, so it is marked ``migrating`` and the
    planner leaves it alone.
    """
    copies: dict[str, list[VM]] = {}
    for v in vms:
        copies.setdefault(v.uuid, []).append(v)
    keep: dict[str, VM] = {}
    for uuid, seen in copies.items():
        best = next((v for v in seen if v.running), seen[0])
        keep[uuid] = best if len(seen) == 1 else replace(best, migrating=True)
    out: list[VM] = []
    for v in vms:
        k = keep.pop(v.uuid, None)
        if k is not None:
            out.append(k)
    return tuple(out)


def _vms(s: HostSample, state: WindowState) -> list[VM]:
    out = []
    for v in sorted(s.vms, key=lambda v: (v.name, v.uuid)):
        w = state.vm(s.name, v.uuid)
        out.append(
            VM(
                name=v.name,
                uuid=v.uuid,
                host=s.name,
                state=v.state,
                vcpus=v.vcpus,
                memory_bytes=v.memory_bytes,
                cpu_cores=w.cpu_cores if w else 0.0,
                cpu_std_cores=w.cpu_std_cores if w else 0.0,
                cpu_history_cores=w.cpu_history_cores if w else 0.0,
                cpu_noise_cores=w.cpu_noise_cores if w else 0.0,
                cpu_samples=len(w.spread) if w else 0,
                cpu_window_samples=len(w.cpu) if w else 0,
                memory_used_bytes=round(w.memory_used_bytes) if w else v.memory_used_bytes,
                dirty_rate_bytes_s=v.dirty_rate_bytes_s,
                disks=v.disks,
                tags=v.tags,
                persistent=v.persistent,
                migrating=v.migrating,
            )
        )
    return out


def _host(s: HostSample, hw: HostWindow, vms: list[VM]) -> Host:
    ep = s.endpoint
    node = s.node if s.ok else hw.node
    node = node or NodeSample(cpus=0, memory_bytes=0)
    disk_capacity_bytes = (
        ep.disk_capacity_bytes if ep.disk_capacity_bytes is not None else node.disk_capacity_bytes
    )
    disk_free = node.disk_free_bytes
    if ep.disk_capacity_bytes is not None:
        disk_free = max(0, ep.disk_capacity_bytes - (node.disk_capacity_bytes - node.disk_free_bytes))
    backing = set(node.volumes) | {p for v in vms for p in v.backing_paths} if s.ok else set(node.volumes)
    return Host(
        name=s.name,
        state=HostState.UP if s.ok else HostState.DOWN,
        cpus=float(ep.cpus if ep.cpus is not None else node.cpus),
        memory_bytes=ep.memory_bytes if ep.memory_bytes is not None else node.memory_bytes,
        disk_capacity_bytes=disk_capacity_bytes,
        disk_free_bytes=disk_free,
        memory_free_bytes=node.memory_free_bytes,
        labels=dict(ep.labels),
        backing_files=tuple(sorted(backing)),
        hypervisor=node.hypervisor,
        hypervisor_version=node.hypervisor_version,
        libvirt_version=node.libvirt_version,
        cpu_model=node.cpu_model,
        cpu_history=hw.cpu_history,
        memory_history=hw.memory_history,
        error=None if s.error is None else str(s.error),
    )
