"""Machine directories the lab needs but may not find: mount points and /run/netns.

Without libvirt-daemon-system, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
/var/cache/libvirt may not exist, and a bind mount needs an existing mount point. `ip netns add`
creates /run/netns (and bind-mounts it onto itself). What the lab creates is recorded in
<cache root>/made-dirs and removed by the `down` of the last lab on the machine: removing a mount
point while another lab still has a host bind-mounted on it would detach that host's mount, so
nothing is removed while any other named network namespace exists.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from balancer.lab.command import run
from balancer.lab.layout import HOST_BINDS, cache_root

RUN_NETNS = Path("/run/netns")


def _marker() -> Path:
    return cache_root() / "made-dirs"


@contextmanager
def _recorded() -> Iterator[list[str]]:
    """The recorded list, locked against other labs; changes to it are written back."""
    marker = _marker()
    marker.parent.mkdir(parents=True, exist_ok=True)
    with open(marker, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        entries = [line for line in handle.read().splitlines() if line]
        yield entries
        handle.seek(0)
        handle.truncate()
        handle.write("".join(f"{entry}\n" for entry in dict.fromkeys(entries)))


def ensure(paths: Iterable[str] = HOST_BINDS) -> None:
    """Create missing directories among `paths` (default: the per-host mount points), recorded."""
    with _recorded() as entries:
        for path in paths:
            if not os.path.isdir(path):
                os.makedirs(path)
                entries.append(path)
        if not RUN_NETNS.exists():  # `ip netns add` is about to create it
            entries.append(str(RUN_NETNS))


def release_if_last(other_netns: list[str]) -> None:
    """Remove recorded directories that are empty, unless other network namespaces (labs) exist."""
    if other_netns:
        return
    with _recorded() as entries:
        for path in list(entries):
            if os.path.isdir(path) and os.listdir(path):
                continue  # in use by something else, or recreated by a package: keep it
            if path == str(RUN_NETNS):
                # iproute2 may have stacked several bind mounts of /run/netns on itself
                while run(["umount", path], check=False).returncode == 0:
                    pass
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                continue
            entries.remove(path)
