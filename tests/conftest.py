"""Fixtures shared by every test directory.

* ``tests.pg``: one real PostgreSQL server per test run (started only when a test asks for it);
* ``balancer.lab.fixtures``: one local lab (3 libvirtd hosts, real QEMU guests) per test run,
  for tests marked ``lab``; guests made with ``lab_guest`` are removed after each test.

The test process sets libvirt up as ``balancer run`` does where it starts (no module does it on import):
libvirt's own stderr printing off (errors still raise with their code and text).
"""

from __future__ import annotations

import pytest

from balancer.service import libvirt_process

pytest_plugins = ["tests.pg", "balancer.lab.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    libvirt_process.quiet_errors()
