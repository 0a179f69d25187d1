"""Fault injection on the shared lab: cut a host's network link, kill or restart its libvirtd."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing

import libvirt
import pytest

from balancer.lab import Lab
from balancer.lab.fixtures import GuestFactory

pytestmark = pytest.mark.lab


def reaches(lab: Lab, src: str, dst: str, timeout_s: int = 3) -> bool:
    """True if src's libvirt client reaches dst's libvirtd over the lab network (migration path)."""
    proc = lab.exec(src, "timeout", str(timeout_s), "virsh", "-c", lab.host(dst).migration_uri, "hostname")
    return proc.returncode == 0 and proc.stdout.strip() == dst


def await_true(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_link_down_cuts_the_host_off_the_lab_network_until_link_up(lab: Lab) -> None:
    assert reaches(lab, "h1", "h2")
    lab.link_down("h2")
    try:
        assert not reaches(lab, "h1", "h2")
        assert not reaches(lab, "h2", "h3")
        assert reaches(lab, "h1", "h3")
        # the control socket is a unix socket, not the lab network: still answers
        with closing(lab.connect("h2")) as conn:
            assert conn.getHostname() == "h2"
    finally:
        lab.link_up("h2")
    assert await_true(lambda: reaches(lab, "h1", "h2"), timeout_s=20)


def test_killed_libvirtd_comes_back_and_still_sees_its_running_guest(
    lab: Lab, lab_guest: GuestFactory
) -> None:
    lab_guest("k1", "h3", dirty_mib_s=2)
    old_pid = lab.libvirtd_pid("h3")
    assert old_pid is not None

    lab.kill_libvirtd("h3")
    assert lab.libvirtd_pid("h3") is None
    with pytest.raises(libvirt.libvirtError):
        lab.connect("h3").close()
    beat = lab.heartbeat("h3", "k1")
    beat = lab.wait_heartbeat("h3", "k1", after=beat, timeout=15)  # the guest does not depend on libvirtd

    lab.start_libvirtd("h3")
    assert lab.libvirtd_pid("h3") not in (None, old_pid)
    with closing(lab.connect("h3")) as conn:
        dom = conn.lookupByName("k1")
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert dom.isPersistent()

    lab.restart_libvirtd("h3")  # the SIGTERM path
    with closing(lab.connect("h3")) as conn:
        assert conn.lookupByName("k1").state()[0] == libvirt.VIR_DOMAIN_RUNNING
    # a counter that kept growing means the guest never restarted
    assert lab.wait_heartbeat("h3", "k1", after=beat, timeout=15) > beat
