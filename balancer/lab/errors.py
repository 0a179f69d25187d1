"""Errors raised by the local lab (a branch of balancer.errors' tree: LabError is a BalancerError).

    LabError                  anything the lab could not do; the message names the host, VM or path
     ├── LabExistsError       `up` found a lab already in that directory
     ├── LabNotFoundError     `open` found no lab in that directory
     ├── LabTimeoutError      an awaited condition (libvirtd ready, heartbeat, exit) did not happen
     └── LabCommandError      a host tool (ip, mount, nsenter, qemu-img, apt-get) exited non-zero

libvirt's own `libvirtError` is not wrapped: the lab hands out libvirt connections and tests want
to see libvirt's codes and messages unchanged.
"""

from __future__ import annotations

from balancer.errors import BalancerError


class LabError(BalancerError):
    """The lab could not do what was asked."""


class LabExistsError(LabError):
    """A lab already exists in the directory given to `up`."""


class LabNotFoundError(LabError):
    """No lab exists in the directory given to `open`."""


class LabTimeoutError(LabError, TimeoutError):
    """An awaited condition did not become true in time."""


class LabCommandError(LabError):
    """A host tool exited non-zero; carries the command, its exit code and its stderr."""

    def __init__(self, cmd: list[str], returncode: int, stderr: str) -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(cmd)!r} exited {returncode}: {stderr.strip()[-2000:]}")
