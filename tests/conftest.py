"""Fixtures shared by every test directory.

* ``tests.pg``: one real PostgreSQL server per test run (started only when a test asks for it);
* ``balancer.lab.fixtures``: one local lab (3 libvirtd hosts, real QEMU guests) per test run,
  for tests marked ``lab``; guests made with ``lab_guest`` are removed after each test.
"""

from __future__ import annotations

pytest_plugins = ["tests.pg", "balancer.lab.fixtures"]
