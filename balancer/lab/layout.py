"""Where a lab keeps everything, and the names and addresses derived from its directory.

One lab is one directory D (default /var/tmp/balancer-lab/lab, or $BALANCER_LAB_DIR):

    D/lab.json             LabState: which hosts, which virt type (written first, removed last)
    D/ns/                  private bind mount holding the hosts' mount and UTS namespace handles
    D/hosts                bind-mounted over /etc/hosts in every host: hN -> its lab address
    D/guest/               kernel + initrd of lab guests; not overlaid, so every host sees the
                           same path, like firmware installed on each compute host
    D/tmp/                 scratch space (raw images for checksums)
    D/hN/{etc,run,lib,log,cache}
                           bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt,
                           /var/log/libvirt, /var/cache/libvirt inside hN only; the same in-host
                           path holds different files on each host, i.e. non-shared storage
    D/hN/libvirtd.pid      outside /run/libvirt, which is per host

Names come from a 4-hex tag of D's real path, so labs in different directories coexist: network
namespaces bl<tag>-hN and bl<tag>-br, subnet 10.77.<k>.0/24 (k from the tag). The subnet exists
only inside the lab's namespaces; two labs with the same k never see each other.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from balancer.lab.errors import LabError

# in-host directory -> name of its per-host backing directory under D/hN
HOST_BINDS: dict[str, str] = {
    "/etc/libvirt": "etc",
    "/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/log/libvirt": "log",
    "/var/cache/libvirt": "cache",
}
HOSTS_FILE_IN_HOST = "/etc/hosts"
LIBVIRTD_TCP_PORT = 16509
# sun_path of a unix socket holds 107 bytes plus the NUL
_MAX_SOCKET_PATH = 107
_HOST_NAME = re.compile(r"h([1-9][0-9]*)")


def cache_root() -> Path:
    """Where caches shared by all labs live ($BALANCER_LAB_CACHE, else /var/tmp/balancer-lab)."""
    override = os.environ.get("BALANCER_LAB_CACHE")
    if override:
        return Path(override)
    var_tmp = Path("/var/tmp")
    return var_tmp / "balancer-lab" if os.access(var_tmp, os.W_OK) else Path("/tmp/balancer-lab")


def default_lab_dir() -> Path:
    """$BALANCER_LAB_DIR, else <cache root>/lab."""
    override = os.environ.get("BALANCER_LAB_DIR")
    return Path(override) if override else cache_root() / "lab"


def host_name(index: int) -> str:
    return f"h{index}"


def host_index(name: str) -> int:
    found = _HOST_NAME.fullmatch(name)
    if not found:
        raise LabError(f"not a lab host name: {name!r} (expected h1, h2, ...)")
    return int(found.group(1))


@dataclass(frozen=True)
class LabLayout:
    """Paths, namespace names and addresses of the lab in `directory` (an absolute, real path)."""

    directory: Path

    @classmethod
    def of(cls, directory: str | Path) -> LabLayout:
        return cls(Path(os.path.realpath(directory)))

    @property
    def tag(self) -> str:
        return hashlib.sha256(str(self.directory).encode()).hexdigest()[:4]

    @property
    def subnet_octet(self) -> int:
        return int(self.tag, 16) % 250 + 1

    @property
    def state_file(self) -> Path:
        return self.directory / "lab.json"

    @property
    def ns_dir(self) -> Path:
        return self.directory / "ns"

    @property
    def hosts_file(self) -> Path:
        return self.directory / "hosts"

    @property
    def guest_dir(self) -> Path:
        return self.directory / "guest"

    @property
    def tmp_dir(self) -> Path:
        return self.directory / "tmp"

    @property
    def bridge_netns(self) -> str:
        return f"bl{self.tag}-br"

    def netns(self, host: str) -> str:
        return f"bl{self.tag}-{host}"

    def netns_path(self, host: str) -> Path:
        return Path("/run/netns") / self.netns(host)

    def host_dir(self, host: str) -> Path:
        return self.directory / host

    def mnt_handle(self, host: str) -> Path:
        return self.ns_dir / f"{host}.mnt"

    def uts_handle(self, host: str) -> Path:
        return self.ns_dir / f"{host}.uts"

    def pid_file(self, host: str) -> Path:
        return self.host_dir(host) / "libvirtd.pid"

    def socket_path(self, host: str) -> Path:
        return self.host_dir(host) / "run" / "libvirt-sock"

    def address(self, host: str) -> str:
        return f"10.77.{self.subnet_octet}.{10 + host_index(host)}"

    def control_uri(self, host: str) -> str:
        """URI for the root namespace: libvirt's unix socket, which works across mount namespaces."""
        return f"qemu+unix:///system?socket={self.socket_path(host)}"

    def migration_uri(self, host: str) -> str:
        """URI a source libvirtd dials from inside the lab network (names from D/hosts)."""
        return f"qemu+tcp://{host}/system"

    def host_path(self, host: str, path_in_host: str) -> Path:
        """The root-namespace path of `path_in_host` as host `host` sees it."""
        path = os.path.normpath(path_in_host)
        if not path.startswith("/"):
            raise LabError(f"host paths are absolute, got {path_in_host!r}")
        if path == HOSTS_FILE_IN_HOST:
            return self.hosts_file
        for inside, backing in HOST_BINDS.items():
            if path == inside or path.startswith(inside + "/"):
                return self.host_dir(host) / backing / path[len(inside) + 1 :]
        return Path(path)

    def check_usable(self, hosts: int) -> None:
        """Refuse settings the kernel would reject later with a less clear error."""
        if not 1 <= hosts <= 200:
            raise LabError(f"hosts={hosts}: a lab has 1 to 200 hosts")
        longest = len(str(self.socket_path(host_name(hosts))))
        if longest > _MAX_SOCKET_PATH:
            raise LabError(
                f"lab directory {self.directory} is too long: the libvirt socket path would be "
                f"{longest} bytes, a unix socket allows {_MAX_SOCKET_PATH}"
            )
