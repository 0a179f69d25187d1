"""The simulator's array cluster as the executor sees a host: SimHost values for SimHypervisor.

``sim/executor.py`` runs the executor's real pre-checks (``executor.prechecks.run_prechecks``) on
these views, built afresh for each move at the instant it is admitted, so a pre-check sees the
simulation as it stands. What a host shows, as its libvirtd would report it:

* free memory: its capacity minus the memory of the VMs placed on it. Migrations heading there are
  not subtracted (a real target allocates their memory only as it arrives): the pre-check adds them
  as ``CheckContext.incoming_memory_bytes``, as the Runner does;
* each VM placed there as a running, persistent domain (with a job while it migrates away) with one
  qcow2 overlay over its image's base file;
* two directory pools on the host's one file system (``images`` for overlays, ``_base`` for base
  images), each reporting the file system's free space, as libvirt reports dir pools;
* a volume per overlay (capacity: the disk's virtual size; allocation: the overlay's bytes) and per
  base image present on the host.
"""

from __future__ import annotations

import numpy as np

from balancer.executor.facts import ChainLink, DiskFacts, DomainFacts, PoolFacts, VolumeFacts
from balancer.executor.hypervisor import Hypervisor, HypervisorFactory
from balancer.sim.cluster import BASE_DIR, IMAGE_DIR, SimCluster
from balancer.sim.hypervisor import SimHost, SimHosts, SimVolume


def hypervisors(cluster: SimCluster) -> HypervisorFactory:
    """Hypervisors of ``cluster``'s hosts as they stand now; each host's view is built on first use."""
    hosts = SimHosts(())

    def get(name: str) -> Hypervisor:
        if name not in hosts.hosts:
            hosts.hosts[name] = host_view(cluster, cluster.host_index[name])
        return hosts.hypervisor(name)

    return get


def host_view(c: SimCluster, h: int) -> SimHost:
    """Host ``h`` of the array cluster now, as a SimHost."""
    free_disk = int(c.host_disk[h] - c.disk_used()[h])
    host = SimHost(
        c.host_names[h],
        free_memory=int(c.host_memory[h] - c.host_memory_used()[h]),
        pools={
            "images": PoolFacts("images", IMAGE_DIR, free_disk),
            "_base": PoolFacts("_base", BASE_DIR, free_disk),
        },
    )
    for v in np.flatnonzero(c.placement == h).tolist():
        disk = c.disks[v]
        chain = tuple(ChainLink(b.path, b.format) for b in disk.backing)
        host.domains[c.vm_uuids[v]] = DomainFacts(
            c.vm_names[v],
            c.vm_uuids[v],
            "running",
            True,
            int(c.memory[v]),
            job_active=bool(c.migrating[v]),
            disks=(DiskFacts(disk.target, disk.path, disk.format, backing=chain),),
        )
        top = VolumeFacts(
            disk.path,
            disk.path.rsplit("/", 1)[1],
            "images",
            disk.virtual_bytes,
            disk.allocated_bytes,
            disk.allocated_bytes,
            disk.format,
            chain[0] if chain else None,
        )
        host.volumes[disk.path] = SimVolume(top)
    for img in np.flatnonzero(c.present[h]).tolist():
        f = c.image_file(img)
        name = f.path.rsplit("/", 1)[1]
        base = VolumeFacts(
            f.path, name, "_base", f.virtual_bytes, f.allocated_bytes, f.allocated_bytes, f.format
        )
        host.volumes[f.path] = SimVolume(base)
    return host
