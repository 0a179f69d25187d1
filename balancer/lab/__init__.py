"""`balancer lab`: a local cluster of libvirt compute hosts on one Linux machine.

Each host is a separate libvirtd in its own mount, UTS and network namespace, so real live block
migrations run between them over a private bridge that exists only inside the lab's namespaces.

    from balancer.lab import Lab
    lab = Lab.up(hosts=3)              # or Lab.open() to attach to a lab another process made
    lab.create_guest("g1", "h1")
    lab.wait_heartbeat("h1", "g1")
    lab.down()

Tests use the pytest fixtures in balancer.lab.fixtures (`lab`, `lab_guest`).
"""

from balancer.lab.domain import LabGuest
from balancer.lab.errors import LabCommandError, LabError, LabExistsError, LabNotFoundError, LabTimeoutError
from balancer.lab.lab import Lab, LabDomain, LabHost
from balancer.lab.layout import default_lab_dir

__all__ = [
    "Lab",
    "LabCommandError",
    "LabDomain",
    "LabError",
    "LabExistsError",
    "LabGuest",
    "LabHost",
    "LabNotFoundError",
    "LabTimeoutError",
    "default_lab_dir",
]
