"""Pre-check failures name the host whose libvirtd failed, and a driver without job support is no failure."""

from __future__ import annotations

from dataclasses import replace

import libvirt
import pytest

from balancer.errors import MigrationError
from balancer.executor.args import ExecutorArgs
from balancer.executor.facts import DomainFacts, MigrationEndpoint
from balancer.executor.libvirt_hypervisor import LibvirtHypervisor
from balancer.executor.prechecks import CheckContext, run_prechecks
from balancer.model import Move, MoveCost
from balancer.reasons import Reason
from balancer.sim.hypervisor import BASE, SimHosts, SimHypervisor

MIB = 1 << 20


class LookupFails(SimHypervisor):
    """A host whose libvirtd answers node calls but fails domain look-ups (as a driver error would)."""

    def domain(self, name_or_uuid: str) -> DomainFacts | None:
        op = f"look up {name_or_uuid} on {self.name}"
        raise MigrationError(1, 10, "internal error: lookup failed", op, self.name)


def _move(vm: str, src: str, dst: str) -> Move:
    return Move(vm, src, dst, Reason.BALANCE, MoveCost(0, 0, 0, 0.0))


@pytest.mark.parametrize("failing", ["a", "b"])
def test_failed_call_is_blamed_on_the_host_it_went_to(failing: str) -> None:
    # The target's name "b" is a substring of the VM's name "web1" and of the source's operation text:
    # attributing the failure by searching the message would blame the wrong host.
    sim = SimHosts.small(("a", "b"))
    sim.add_vm("web1", "a")

    def hypervisors(name: str) -> SimHypervisor:
        return (LookupFails if name == failing else SimHypervisor)(sim, name)

    ctx = CheckContext(args=ExecutorArgs(), known_hosts=("a", "b"))
    res = run_prechecks(_move("web1", "a", "b"), hypervisors, ctx)
    assert res.status == "fail"
    assert res.reason == (Reason.SOURCE_DOWN if failing == "a" else Reason.TARGET_DOWN), res.message
    assert res.error is not None and "lookup failed" in res.error.message


def test_domain_on_a_driver_without_job_support_reads_as_no_job() -> None:
    # libvirt's test driver has no virDomainGetJobInfo: the look-up must still describe the domain.
    hv = LibvirtHypervisor(MigrationEndpoint("t", "test:///default", "test:///default"))
    conn = libvirt.open("test:///default")
    try:
        with pytest.raises(libvirt.libvirtError) as exc:
            conn.lookupByName("test").jobInfo()
        assert exc.value.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT
    finally:
        conn.close()
    facts = hv.domain("test")
    assert facts is not None and facts.running
    assert facts.job_active is False


@pytest.mark.parametrize(
    ("base_free", "passes"), [(4 * MIB + MIB // 2, False), (4 * MIB + MIB // 2 + 1, True)]
)
def test_pools_reporting_the_same_free_space_share_it(base_free: int, passes: bool) -> None:
    # The target lacks the base image: the move writes the 1 MiB overlay into `images` and streams the
    # 4 MiB base into `base`. Each fits in 4.5 MiB alone; both do not. Two directory pools on one file
    # system report the same free bytes, so the same figure is read as one file system (refused), a
    # different one as two (passes).
    sim = SimHosts.small(("a", "b"))
    sim.add_vm("web1", "a")
    target = sim.hosts["b"]
    del target.volumes[BASE]
    target.pools["images"] = replace(target.pools["images"], available=4 * MIB + MIB // 2)
    target.pools["base"] = replace(target.pools["base"], available=base_free)
    ctx = CheckContext(args=ExecutorArgs(disk_headroom_mib=0), known_hosts=("a", "b"))
    res = run_prechecks(_move("web1", "a", "b"), sim.hypervisor, ctx)
    if passes:
        assert res.status == "ok", res.message
    else:
        assert (res.status, res.reason) == ("fail", Reason.TARGET_NO_DISK), res.message
        assert "pools base and images (one file system)" in res.message and "needs 5 MiB" in res.message
