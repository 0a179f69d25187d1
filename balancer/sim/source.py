"""SimSource: the simulated cluster behind the ``metrics.source.LoadSource`` seam.

``collect(now)`` runs the cluster's clock to ``now`` (migrations included) and reports what libvirt's bulk
stats would: per host its node facts (cores, memory, free memory, storage, the backing images present as
volumes) and per running VM its cumulative CPU time in ns, memory, dirty rate and disk chain. The real
``Collector`` then turns counter deltas into rates and smooths them over its window, so the rate between
two ticks 300 s apart is exactly the trace's cores over that interval (plus the source-side migration
overhead while the VM migrates). ``sampled_at`` is the simulated time.

A VM is reported on its source until its migration completes, with ``migrating=True`` while it runs; the
incoming domain on the target is not reported (as a paused incoming domain is no load of its own).
"""

from __future__ import annotations

from balancer.metrics.source import HostEndpoint, HostSample, NodeSample, VMSample
from balancer.sim.cluster import SimCluster

LIBVIRT_VERSION = 9_000_000
QEMU_VERSION = 7_002_000


class SimSource:
    """A LoadSource over a :class:`SimCluster`."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.endpoints = tuple(HostEndpoint(name=h, uri=f"sim:///{h}") for h in cluster.host_names)
        self.closed = False

    def collect(self, now: float) -> list[HostSample]:
        """One sample per host, in host order, after running the simulated clock to ``now``."""
        if self.closed:
            raise RuntimeError("SimSource is closed")
        c = self.cluster
        c.advance(now)
        free = c.memory_free()
        disk_free = c.host_disk - c.disk_used()
        per_host: list[list[VMSample]] = [[] for _ in c.host_names]
        cpu_ns = c.cpu_ns
        for v in range(c.n_vms):
            per_host[int(c.placement[v])].append(
                VMSample(
                    name=c.vm_names[v],
                    uuid=c.vm_uuids[v],
                    state="running",
                    vcpus=int(c.vcpus[v]),
                    memory_bytes=int(c.memory[v]),
                    memory_used_bytes=int(c.memory_used[v]),
                    cpu_time_ns=int(cpu_ns[v]),
                    dirty_rate_bytes_s=float(c.dirty[v]),
                    disks=(c.disks[v],),
                    migrating=bool(c.migrating[v]),
                )
            )
        out = []
        for h, ep in enumerate(self.endpoints):
            node = NodeSample(
                cpus=int(c.host_cpus[h]),
                memory_bytes=int(c.host_memory[h]),
                memory_free_bytes=int(free[h]),
                disk_capacity_bytes=int(c.host_disk[h]),
                disk_free_bytes=int(disk_free[h]),
                volumes=tuple(p for p, ok in zip(c.image_paths, c.present[h], strict=True) if ok),
                cpu_model="sim-x86-64",
                hypervisor="QEMU",
                hypervisor_version=QEMU_VERSION,
                libvirt_version=LIBVIRT_VERSION,
            )
            out.append(HostSample(endpoint=ep, sampled_at=now, node=node, vms=tuple(per_host[h])))
        return out

    def close(self) -> None:
        self.closed = True
