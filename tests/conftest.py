"""Fixtures shared by every test directory.

* ``tests.pg``: one real PostgreSQL server per test run (started only when a test asks for it);
* ``balancer.lab.fixtures``: one local lab (3 libvirtd hosts, real QEMU guests) per test run,
  for tests marked ``lab``; guests made with ``lab_guest`` are removed after each test.

The test process sets libvirt up as ``balancer run`` does where it starts (no module does it on import):
libvirt's own stderr printing off (errors still raise with their code and text).

Hypothesis profile ``ci`` (``scripts/test.sh`` passes ``--hypothesis-profile=ci``): property tests run
derandomized, the same examples on every run, so a red CI run is reproducible and a green one is not luck
of the draw. A plain ``pytest`` (or ``--hypothesis-seed=N``) explores new examples each time: that is how
new counterexamples are found; each one found becomes a unit test (e.g. tests/policy/test_repair.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from balancer.service import libvirt_process

settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pytest_plugins = ["tests.pg", "balancer.lab.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    libvirt_process.quiet_errors()
