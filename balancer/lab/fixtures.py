"""pytest plugin: one lab for the whole test run, and lab guests removed after each test.

Enable it in the rootdir conftest with `pytest_plugins = ["balancer.lab.fixtures"]`, or import
the fixtures and hooks into a conftest. Mark tests that use it `@pytest.mark.lab`.

    @pytest.mark.lab
    def test_x(lab: Lab, lab_guest: GuestFactory) -> None:
        guest = lab_guest("g1", "h1")          # waits for its first heartbeat
        ...

The lab is skipped where it cannot run (not root, tools missing); with BALANCER_LAB_REQUIRED=1
(set it in CI) that is a failure instead. Timings (bring-up, guest boot, teardown, and whatever
tests add with lab_timings.record) are printed in the terminal summary.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Protocol

import pytest

from balancer.lab.bringup import REQUIRED_TOOLS
from balancer.lab.domain import LabGuest
from balancer.lab.errors import LabError
from balancer.lab.lab import Lab

LAB_HOSTS = 3
# ~8 s alone under TCG; several guests booting at once on a busy 2-core machine took 35 s
GUEST_BOOT_TIMEOUT_S = 120.0
_TIMINGS = pytest.StashKey["LabTimings"]()


class LabTimings:
    """Durations in seconds by name, e.g. 'lab up', 'guest boot', 'migration h1->h2'."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def record(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def lines(self) -> list[str]:
        lines = []
        for name, values in self.samples.items():
            if len(values) == 1:
                lines.append(f"{name}: {values[0]:.2f} s")
            else:
                lines.append(
                    f"{name}: n={len(values)} min {min(values):.2f} s, "
                    f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"
                )
        return lines


class GuestFactory(Protocol):
    def __call__(
        self, name: str | None = None, host: str = "h1", *, wait: bool = True, **knobs: int
    ) -> LabGuest:
        """Create a guest (Lab.create_guest knobs); wait=True awaits its first heartbeat."""
        ...


def unavailable_reason() -> str | None:
    """Why the lab cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (namespaces, mounts, libvirtd)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the lab needs {', '.join(missing)}"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs the local lab (real libvirtd hosts and QEMU guests)")
    config.stash[_TIMINGS] = LabTimings()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    timings = config.stash.get(_TIMINGS, None)
    if timings and timings.samples:
        terminalreporter.section("lab timings")
        for line in timings.lines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def lab_timings(pytestconfig: pytest.Config) -> LabTimings:
    return pytestconfig.stash.setdefault(_TIMINGS, LabTimings())


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_timings: LabTimings) -> Iterator[Lab]:
    """A 3-host lab for the whole run, in a temporary directory; down and checked clean at the end."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("BALANCER_LAB_REQUIRED") == "1":
            pytest.fail(f"BALANCER_LAB_REQUIRED=1 but {reason}")
        pytest.skip(reason)
    started = time.monotonic()
    instance = Lab.up(hosts=LAB_HOSTS, directory=tmp_path_factory.mktemp("lab"))
    lab_timings.record("lab up (3 hosts)", time.monotonic() - started)
    try:
        yield instance
    finally:
        started = time.monotonic()
        instance.down()
        lab_timings.record("lab down", time.monotonic() - started)
    left = instance.check_clean()
    assert not left, f"lab down left: {left}"


@pytest.fixture
def lab_guest(lab: Lab, lab_timings: LabTimings) -> Iterator[GuestFactory]:
    """Factory for lab guests; every guest it made is destroyed, undefined and its disks and logs
    deleted on every host after the test (wherever migrations took it). Afterwards it also
    restores every host's link and libvirtd, in case a fault test stopped half way."""
    made: list[str] = []

    def create(name: str | None = None, host: str = "h1", *, wait: bool = True, **knobs: int) -> LabGuest:
        name = name or f"t-{uuid.uuid4().hex[:8]}"
        made.append(name)  # before creating, so a half-created guest is removed as well
        started = time.monotonic()
        guest = lab.create_guest(name, host, **knobs)
        if wait:
            lab.wait_heartbeat(host, name, timeout=GUEST_BOOT_TIMEOUT_S)
            lab_timings.record("guest create to first heartbeat", time.monotonic() - started)
            trouble = lab.guest_trouble(host, name)
            if trouble:  # e.g. OOM kills: the guest would not carry the load the test counts on
                raise LabError(f"guest {name} on {host} is in trouble after booting: {trouble}")
        return guest

    yield create
    # a fault test that failed half way must not leave the shared lab broken for the next test
    for host in lab.hosts:
        lab.link_up(host.name)
        if lab.libvirtd_pid(host.name) is None:
            lab.start_libvirtd(host.name)
    for name in made:
        lab.delete_guest(name)
