"""Each lab host's storage: directory pools `images` and `base`, persistent, autostarted, active.

    images  /var/lib/libvirt/images   guest qcow2 overlays, <vm>.qcow2
    base    /var/lib/libvirt/base     backing files, e.g. labguest-base.raw

The paths are the same on every host but private to it (under its own /var/lib/libvirt), i.e.
non-shared storage. The balancer's executor creates disks and copies backing files on other hosts
only through libvirt's storage API; the lab seeds a host's base like an image cache would.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.sax.saxutils import escape

import libvirt

from balancer.lab.domain import BASE_POOL_DIR, BASE_VIRTUAL_MIB, BASE_VOLUME, IMAGES_POOL_DIR, LabGuest
from balancer.lab.layout import LabLayout

POOLS = {"images": IMAGES_POOL_DIR, "base": BASE_POOL_DIR}
MIB = 1 << 20


def define_pools(conn: libvirt.virConnect) -> None:
    for name, path in POOLS.items():
        xml = f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"
        pool = conn.storagePoolDefineXML(xml, 0)
        pool.setAutostart(1)
        pool.create(0)


def ensure_base(conn: libvirt.virConnect, layout: LabLayout, host: str, base_image: Path) -> None:
    """Put the guest base image into the host's `base` pool unless it is there already."""
    pool = conn.storagePoolLookupByName("base")
    if BASE_VOLUME in pool.listVolumes():
        return
    target = layout.host_path(host, f"{BASE_POOL_DIR}/{BASE_VOLUME}")
    tmp = target.with_name(f".{target.name}.tmp")  # pool refreshes skip dot files
    shutil.copyfile(base_image, tmp)
    tmp.replace(target)
    pool.refresh(0)


def overlay_volume_xml(name: str, capacity_bytes: int, backing_path: str, backing_format: str = "raw") -> str:
    """Volume XML of a qcow2 overlay on a backing file (what Nova's image backend creates)."""
    return f"""\
<volume>
  <name>{escape(name)}</name>
  <capacity unit='bytes'>{capacity_bytes}</capacity>
  <target><format type='qcow2'/><compat>1.1</compat></target>
  <backingStore>
    <path>{escape(backing_path)}</path>
    <format type='{backing_format}'/>
  </backingStore>
</volume>
"""


def create_overlay(conn: libvirt.virConnect, guest: LabGuest) -> None:
    pool = conn.storagePoolLookupByName("images")
    xml = overlay_volume_xml(guest.volume_name, BASE_VIRTUAL_MIB * MIB, f"{BASE_POOL_DIR}/{BASE_VOLUME}")
    pool.createXML(xml, 0)


def delete_volume(conn: libvirt.virConnect, pool_name: str, volume: str) -> bool:
    """Delete the volume if the pool has it; True if it did."""
    pool = conn.storagePoolLookupByName(pool_name)
    pool.refresh(0)
    if volume not in pool.listVolumes():
        return False
    pool.storageVolLookupByName(volume).delete(0)
    return True
