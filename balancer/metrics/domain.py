"""Pure: one domain's bulk-stats record and XML → :class:`VMSample`. No libvirt calls here.

Where each value comes from, first match wins:

* state, reason: ``state.state``/``state.reason`` (else ``virDomainGetInfo``);
* CPU time: ``cpu.time`` (ns, else ``virDomainGetInfo`` cpuTime); vcpus: ``vcpu.current`` (else info);
* memory held: ``balloon.current`` (KiB, else info's current memory); memory used:
  ``balloon.available - balloon.unused``, else ``balloon.rss``, else the memory held;
* disk bytes per image: block stats matched by path, else by (target, position in the chain),
  else the storage-pool volume with that path, else 0. ``physical`` (what the image occupies on the
  host, QEMU's ``actual-size``) is preferred to ``allocation`` (QEMU's highest written offset, which
  backing images opened read-only do not report);
* disk format and the backing chain: the domain XML's ``<driver type>``, ``<source>`` and nested
  ``<backingStore>`` elements;
* tags: ``<metadata><balancer:rules>`` in :data:`METADATA_NS` (see docs/metadata.md).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from balancer.metrics.source import VMSample
from balancer.model import BackingFile, Disk, VMTags

METADATA_NS = "https://balancer.dev/xmlns/1"
METADATA_PREFIX = "balancer"

KIB = 1024
MIB = 1024 * 1024

# virDomainState, by number
STATE_NAMES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended")
_RUNNING, _PAUSED = 1, 3
# (state, reason) pairs that mean a migration is under way or broke half-way (post-copy failed):
# RUNNING_POSTCOPY, RUNNING_POSTCOPY_FAILED, PAUSED_MIGRATION, PAUSED_POSTCOPY, PAUSED_POSTCOPY_FAILED
MIGRATING_REASONS = frozenset({(_RUNNING, 10), (_RUNNING, 11), (_PAUSED, 2), (_PAUSED, 12), (_PAUSED, 13)})
DIRTYRATE_MEASURED = 2
JOB_NONE = 0
JOB_MIGRATION_OPERATIONS = frozenset({4, 5})  # VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN, _OUT


@dataclass(frozen=True)
class ImageSpec:
    """One image of a disk's chain as the XML names it."""

    path: str  # file/dev path, or network name; "" when the XML does not say (e.g. a pool volume)
    format: str


@dataclass(frozen=True)
class DiskSpec:
    target: str
    chain: tuple[ImageSpec, ...]  # top image first, then its backing files nearest first


@dataclass(frozen=True)
class DomainXML:
    """What collection needs from a domain's XML."""

    disks: tuple[DiskSpec, ...]
    tags: VMTags
    vcpus: int = 0
    memory_bytes: int = 0  # <currentMemory>

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(i.path for d in self.disks for i in d.chain if i.path)


@dataclass(frozen=True)
class ImageBytes:
    capacity: int
    allocated: int


def parse_domain_xml(text: str) -> DomainXML:
    """Disks (device="disk" with a source) with their chains, our metadata tags, vcpus and memory."""
    root = ET.fromstring(text)
    disks = []
    for disk in root.iterfind("./devices/disk"):
        if disk.get("device", "disk") != "disk":
            continue  # cdrom, floppy, lun: not copied by a block migration
        target = disk.find("target")
        chain = _chain(disk, disk.find("driver"))
        if target is None or not chain:
            continue
        disks.append(DiskSpec(target=target.get("dev", ""), chain=chain))
    vcpu = root.find("vcpu")
    vcpus = int(vcpu.get("current", vcpu.text or 0)) if vcpu is not None else 0
    return DomainXML(
        disks=tuple(disks),
        tags=parse_tags(root),
        vcpus=vcpus,
        memory_bytes=_memory(root.find("currentMemory")),
    )


def _chain(elem: ET.Element, format_elem: ET.Element | None) -> tuple[ImageSpec, ...]:
    images: list[ImageSpec] = []
    while elem is not None:
        source = elem.find("source")
        if source is None:
            break  # "<backingStore/>": the chain ends here
        path = source.get("file") or source.get("dev") or source.get("name") or ""
        fmt = format_elem.get("type", "raw") if format_elem is not None else "raw"
        images.append(ImageSpec(path=path, format=fmt))
        nxt = elem.find("backingStore")
        if nxt is None:
            break
        elem, format_elem = nxt, nxt.find("format")
    return tuple(images)


def _memory(elem: ET.Element | None) -> int:
    if elem is None or not (elem.text or "").strip():
        return 0
    unit = elem.get("unit", "KiB").lower()
    scale = {"b": 1, "bytes": 1, "k": KIB, "kib": KIB, "m": MIB, "mib": MIB, "g": MIB * KIB, "gib": MIB * KIB}
    return int(elem.text or 0) * scale.get(unit, KIB)


def parse_tags(root: ET.Element) -> VMTags:
    """``<metadata><balancer:rules>``: ``<exclude/>``, ``<pin host=…/>`` (repeatable), ``<group name=…/>``."""
    rules = root.find(f"./metadata/{{{METADATA_NS}}}rules")
    if rules is None:
        return VMTags()
    ns = f"{{{METADATA_NS}}}"
    return VMTags(
        exclude=rules.find(f"{ns}exclude") is not None,
        pin_hosts=_unique(e.get("host", "") for e in rules.iterfind(f"{ns}pin")),
        groups=_unique(e.get("name", "") for e in rules.iterfind(f"{ns}group")),
    )


def _unique(values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))


# --------------------------------------------------------------------------- block stats
@dataclass(frozen=True)
class BlockStats:
    """``block.<n>.*`` of one record, indexed by path and by (target, position in the chain)."""

    by_path: Mapping[str, ImageBytes]
    by_target: Mapping[str, tuple[tuple[str, ImageBytes], ...]]  # target → [(path, bytes)] top first

    @classmethod
    def of(cls, stats: Mapping[str, Any]) -> BlockStats:
        by_path: dict[str, ImageBytes] = {}
        by_target: dict[str, list[tuple[str, ImageBytes]]] = {}
        for n in range(int(stats.get("block.count", 0))):
            p = f"block.{n}."
            physical = int(stats.get(p + "physical", 0))
            image = ImageBytes(
                capacity=int(stats.get(p + "capacity", 0)),
                allocated=physical or int(stats.get(p + "allocation", 0)),
            )
            path = str(stats.get(p + "path", ""))
            if path:
                by_path[path] = image
            by_target.setdefault(str(stats.get(p + "name", "")), []).append((path, image))
        return cls(by_path=by_path, by_target={t: tuple(v) for t, v in by_target.items()})

    def image(self, target: str, depth: int, path: str) -> tuple[str, ImageBytes] | None:
        if path and path in self.by_path:
            return path, self.by_path[path]
        entries = self.by_target.get(target, ())
        if depth < len(entries) and (not path or not entries[depth][0]):
            return entries[depth]
        return None


def build_disks(spec: DomainXML, block: BlockStats, volumes: Mapping[str, ImageBytes]) -> tuple[Disk, ...]:
    """Each disk with bytes for its top image and every backing file (see the module docstring)."""
    disks = []
    for d in spec.disks:
        images = []
        for depth, img in enumerate(d.chain):
            found = block.image(d.target, depth, img.path)
            path, size = found if found else (img.path, volumes.get(img.path, ImageBytes(0, 0)))
            images.append((path or img.path, img.format, size))
        (top_path, top_fmt, top), backing = images[0], images[1:]
        disks.append(
            Disk(
                target=d.target,
                path=top_path,
                format=top_fmt,
                virtual_bytes=top.capacity,
                allocated_bytes=top.allocated,
                backing=tuple(
                    BackingFile(path=p, format=f, virtual_bytes=s.capacity, allocated_bytes=s.allocated)
                    for p, f, s in backing
                ),
            )
        )
    return tuple(disks)


def missing_paths(spec: DomainXML, block: BlockStats) -> list[str]:
    """Image paths the block stats did not cover (to be looked up as storage-pool volumes)."""
    return [
        img.path
        for d in spec.disks
        for depth, img in enumerate(d.chain)
        if img.path and block.image(d.target, depth, img.path) is None
    ]


# --------------------------------------------------------------------------- the VM
def state_of(stats: Mapping[str, Any], info: Sequence[int] | None) -> tuple[int, int]:
    """(state, reason) from the record, else from virDomainGetInfo (which has no reason)."""
    if "state.state" in stats:
        return int(stats["state.state"]), int(stats.get("state.reason", 0))
    return (int(info[0]), 0) if info else (0, 0)


def job_is_migration(job: Mapping[str, Any]) -> bool:
    """``virDomainGetJobStats`` shows an active migration (or an active job of unknown operation)."""
    if int(job.get("type", JOB_NONE)) == JOB_NONE:
        return False
    operation = job.get("operation")
    return operation is None or int(operation) in JOB_MIGRATION_OPERATIONS


def needs_info(stats: Mapping[str, Any]) -> bool:
    """True when the record lacks a value only virDomainGetInfo can supply (e.g. the test driver)."""
    return not ("cpu.time" in stats and "balloon.current" in stats and "vcpu.current" in stats)


def vm_sample(
    name: str,
    uuid: str,
    stats: Mapping[str, Any],
    spec: DomainXML,
    *,
    info: Sequence[int] | None = None,
    volumes: Mapping[str, ImageBytes] | None = None,
    persistent: bool = True,
    job_migrating: bool = False,
    info_at: float | None = None,
) -> VMSample:
    """Build a VMSample from one ``getAllDomainStats`` record, the domain XML and the fallbacks."""
    state, reason = state_of(stats, info)
    state_name = STATE_NAMES[state] if 0 <= state < len(STATE_NAMES) else "nostate"
    cpu_time: int | None = int(stats["cpu.time"]) if "cpu.time" in stats else None
    cpu_at: float | None = None  # None: read with the bulk stats, at the host's sampled_at
    if cpu_time is None and info:
        cpu_time, cpu_at = int(info[4]), info_at
    vcpus = int(stats.get("vcpu.current", info[3] if info else spec.vcpus))
    if "balloon.current" in stats:
        memory = int(stats["balloon.current"]) * KIB
    else:
        memory = int(info[2]) * KIB if info else spec.memory_bytes
    if "balloon.available" in stats and "balloon.unused" in stats:
        used = (int(stats["balloon.available"]) - int(stats["balloon.unused"])) * KIB
    elif "balloon.rss" in stats:
        used = int(stats["balloon.rss"]) * KIB
    else:
        used = memory
    dirty = 0.0
    if int(stats.get("dirtyrate.calc_status", -1)) == DIRTYRATE_MEASURED:
        dirty = float(stats.get("dirtyrate.megabytes_per_second", 0)) * MIB
    return VMSample(
        name=name,
        uuid=uuid,
        state=state_name,
        vcpus=vcpus,
        memory_bytes=memory,
        memory_used_bytes=0 if state_name == "shutoff" else max(used, 0),
        cpu_time_ns=cpu_time,
        cpu_sampled_at=cpu_at,
        dirty_rate_bytes_s=dirty,
        disks=build_disks(spec, BlockStats.of(stats), volumes or {}),
        tags=spec.tags,
        persistent=persistent,
        migrating=job_migrating or (state, reason) in MIGRATING_REASONS,
    )
