"""The configuration files of one lab host: libvirtd.conf, qemu.conf and the shared /etc/hosts."""

from __future__ import annotations

import uuid

from balancer.lab.layout import LIBVIRTD_TCP_PORT, LabLayout

_UUID_NAMESPACE = uuid.UUID("6f0c2f4e-8a51-4d53-9a3b-2b8f1c7a6d10")


def host_uuid(layout: LabLayout, host: str) -> str:
    """Stable per lab and host; libvirt refuses a migration between hosts with the same host UUID,
    and SMBIOS (its default source) is not readable on this kind of machine."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{layout.tag}/{host}"))


def libvirtd_conf(layout: LabLayout, host: str) -> str:
    return f"""\
# written by balancer.lab for {host} of {layout.directory}
listen_tls = 0
listen_tcp = 1
# only inside the lab's private network namespaces, so no authentication
listen_addr = "{layout.address(host)}"
tcp_port = "{LIBVIRTD_TCP_PORT}"
auth_tcp = "none"
auth_unix_rw = "none"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
host_uuid = "{host_uuid(layout, host)}"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


def qemu_conf(layout: LabLayout, host: str) -> str:
    address = layout.address(host)
    return f"""\
# written by balancer.lab for {host} of {layout.directory}
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
# the destination tells the source to send RAM and the NBD disk mirror here
migration_host = "{address}"
migration_address = "{address}"
# all hosts share the machine's cgroup tree; libvirt would create /machine/qemu-<id>-<name> for
# each guest and two hosts could collide, so the lab uses no cgroups at all
cgroup_controllers = [ ]
# qemu writes its log itself: no virtlogd needed
stdio_handler = "file"
"""


def hosts_file(layout: LabLayout, hosts: list[str]) -> str:
    lines = ["127.0.0.1 localhost"] + [f"{layout.address(h)} {h}" for h in hosts]
    return "\n".join(lines) + "\n"
