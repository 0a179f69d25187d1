"""libvirt XML (domain, storage volume) read into facts and written for new volumes; pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from balancer.executor.facts import ChainLink, DiskFacts, DomainFacts

_UNITS = {
    "b": 1,
    "bytes": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 1000,
    "m": 1 << 20,
    "mib": 1 << 20,
    "mb": 1000**2,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 1000**3,
    "t": 1 << 40,
    "tib": 1 << 40,
}


def _bytes(el: ET.Element | None, default_unit: str = "KiB") -> int:
    if el is None or not (el.text or "").strip():
        return 0
    unit = (el.get("unit") or default_unit).lower()
    return int(el.text or "0") * _UNITS.get(unit, 1)


def _source_path(el: ET.Element) -> str:
    src = el.find("source")
    if src is None:
        return ""
    return src.get("file") or src.get("dev") or src.get("name") or src.get("volume") or ""


def _chain(disk: ET.Element) -> tuple[ChainLink, ...]:
    out: list[ChainLink] = []
    node = disk.find("backingStore")
    while node is not None and node.find("source") is not None:
        fmt = node.find("format")
        out.append(ChainLink(_source_path(node), fmt.get("type", "") if fmt is not None else ""))
        node = node.find("backingStore")
    return tuple(out)


def domain_facts(xml: str, state: str, persistent: bool, job_active: bool) -> DomainFacts:
    """DomainFacts from a domain's (live) XML: file disks with their backing chains, CPU, memory."""
    root = ET.fromstring(xml)
    disks: list[DiskFacts] = []
    others: list[str] = []
    for d in root.findall("devices/disk"):
        path = _source_path(d)
        if not path:
            continue  # empty cdrom drive
        driver = d.find("driver")
        target = d.find("target")
        facts = DiskFacts(
            target=target.get("dev", "") if target is not None else "",
            path=path,
            format=(driver.get("type", "raw") if driver is not None else "raw"),
            device=d.get("device", "disk"),
            readonly=d.find("readonly") is not None,
            shareable=d.find("shareable") is not None,
            backing=_chain(d),
        )
        if d.get("type", "file") == "file" and facts.migratable:
            disks.append(facts)
        else:
            others.append(path)
    cpu = root.find("cpu")
    cpu_xml = ""
    if cpu is not None and (cpu.find("model") is not None or cpu.get("mode") == "host-passthrough"):
        cpu_xml = ET.tostring(cpu, encoding="unicode")
    os_type = root.find("os/type")
    return DomainFacts(
        name=root.findtext("name") or "",
        uuid=root.findtext("uuid") or "",
        state=state,
        persistent=persistent,
        memory_bytes=_bytes(mem if (mem := root.find("currentMemory")) is not None else root.find("memory")),
        job_active=job_active,
        disks=tuple(disks),
        other_disk_sources=tuple(others),
        cpu_xml=cpu_xml,
        cpu_mode=cpu.get("mode", "custom") if cpu is not None else "",
        emulator=root.findtext("devices/emulator") or "",
        arch=os_type.get("arch", "") if os_type is not None else "",
        machine=os_type.get("machine", "") if os_type is not None else "",
        virt_type=root.get("type", ""),
    )


def volume_format(xml: str) -> str:
    fmt = ET.fromstring(xml).find("target/format")
    return fmt.get("type", "") if fmt is not None else ""


def volume_mtime(xml: str) -> str:
    """The volume's last modification time as libvirt writes it (``<timestamps><mtime>``), or ""."""
    return (ET.fromstring(xml).findtext("target/timestamps/mtime") or "").strip()


def volume_backing(xml: str) -> ChainLink | None:
    """The backing store a volume's XML declares (path and format), or None for a flat volume."""
    bs = ET.fromstring(xml).find("backingStore")
    if bs is None or not (bs.findtext("path") or "").strip():
        return None
    fmt = bs.find("format")
    return ChainLink((bs.findtext("path") or "").strip(), fmt.get("type", "") if fmt is not None else "")


def volume_xml(name: str, capacity: int, fmt: str, backing: ChainLink | None) -> str:
    """XML for storagePool.createXML: an empty volume of ``capacity`` bytes, optionally an overlay."""
    bs = ""
    if backing is not None:
        bs = (
            f"<backingStore><path>{escape(backing.path)}</path>"
            f"<format type='{escape(backing.format)}'/></backingStore>"
        )
    return (
        f"<volume type='file'><name>{escape(name)}</name>"
        f"<capacity unit='bytes'>{int(capacity)}</capacity><allocation unit='bytes'>0</allocation>"
        f"<target><format type='{escape(fmt)}'/></target>{bs}</volume>"
    )
