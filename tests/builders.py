"""Test builders: ``host()``, ``vm()``, ``disk()``, ``snapshot()`` with defaults for every field.

Each call returns a fresh object; keyword arguments override fields of the model class. Sizes are in
bytes like the model; ``GIB``/``MIB`` help write them.
"""

from __future__ import annotations

import uuid as _uuid
from typing import Any

from balancer.model import VM, BackingFile, Disk, Host, HostState, Snapshot, VMTags

MIB = 1 << 20
GIB = 1 << 30
BASE = "/var/lib/libvirt/images/_base/debian12.qcow2"
NOW = 1_700_000_000.0


def backing(path: str = BASE, allocated_bytes: int = 2 * GIB, **kw: Any) -> BackingFile:
    fields: dict[str, Any] = {"path": path, "format": "qcow2", "virtual_bytes": 20 * GIB}
    fields.update(allocated_bytes=allocated_bytes, **kw)
    return BackingFile(**fields)


def disk(
    target: str = "vda",
    allocated_bytes: int = 5 * GIB,
    backing_files: tuple[BackingFile, ...] | None = None,
    **kw: Any,
) -> Disk:
    fields: dict[str, Any] = {
        "target": target,
        "path": f"/var/lib/libvirt/images/{target}-{_uuid.uuid4().hex[:8]}.qcow2",
        "format": "qcow2",
        "virtual_bytes": 20 * GIB,
        "allocated_bytes": allocated_bytes,
        "backing": (backing(),) if backing_files is None else backing_files,
    }
    fields.update(kw)
    return Disk(**fields)


def host(name: str = "h1", **kw: Any) -> Host:
    fields: dict[str, Any] = {
        "name": name,
        "state": HostState.UP,
        "cpus": 16.0,
        "memory_bytes": 64 * GIB,
        "disk_capacity_bytes": 0,
        "disk_free_bytes": 0,
        "memory_free_bytes": 0,
        "labels": {},
        "backing_files": (BASE,),
        "hypervisor": "QEMU",
        "hypervisor_version": 8_002_000,
        "libvirt_version": 9_000_000,
        "cpu_model": "host-model",
        "cpu_history": (),
        "memory_history": (),
        "error": None,
    }
    fields.update(kw)
    return Host(**fields)


def vm(name: str = "vm1", host: str = "h1", **kw: Any) -> VM:
    fields: dict[str, Any] = {
        "name": name,
        "uuid": str(_uuid.uuid5(_uuid.NAMESPACE_DNS, name)),
        "host": host,
        "state": "running",
        "vcpus": 2,
        "memory_bytes": 4 * GIB,
        "cpu_cores": 1.0,
        "memory_used_bytes": 0,
        "dirty_rate_bytes_s": 0.0,
        "disks": None,
        "tags": VMTags(),
        "persistent": True,
        "migrating": False,
    }
    fields.update(kw)
    if fields["disks"] is None:
        fields["disks"] = (disk(path=f"/var/lib/libvirt/images/{name}-vda.qcow2"),)
    return VM(**fields)


def snapshot(
    hosts: tuple[Host, ...] | list[Host] = (), vms: tuple[VM, ...] | list[VM] = (), **kw: Any
) -> Snapshot:
    fields: dict[str, Any] = {"taken_at": NOW, "hosts": tuple(hosts), "vms": tuple(vms)}
    fields.update(kw)
    return Snapshot(**fields)


def hot_history(used: float, ticks: int = 5) -> tuple[float, ...]:
    """A host history that stayed at ``used`` (cores or bytes) for ``ticks`` ticks."""
    return (float(used),) * ticks
