"""Pure samples + window state → Snapshot: capacity, down hosts, backing files, smoothed values."""

from __future__ import annotations

from balancer.errors import CollectError
from balancer.metrics.snapshot import build_snapshot
from balancer.metrics.source import HostEndpoint, HostSample, NodeSample, VMSample
from balancer.metrics.window import WindowState, advance
from balancer.model import BackingFile, Disk, HostState, VMTags, snapshot_from_json, snapshot_to_json

GIB = 1 << 30
NODE = NodeSample(
    cpus=32,
    memory_bytes=256 * GIB,
    memory_free_bytes=100 * GIB,
    disk_capacity_bytes=1000 * GIB,
    disk_free_bytes=700 * GIB,
    volumes=("/img/_base/a.qcow2",),
    cpu_model="Skylake-Server-IBRS",
    hypervisor="QEMU",
    hypervisor_version=7_002_000,
    libvirt_version=9_000_000,
)
DISK = Disk(
    target="vda",
    path="/img/vm.qcow2",
    format="qcow2",
    virtual_bytes=20 * GIB,
    allocated_bytes=2 * GIB,
    backing=(BackingFile("/img/_base/b.qcow2", "qcow2", 10 * GIB, GIB),),
)


def vm(name: str, ns: int, used: int, memory: int = 8 * GIB, **kw: object) -> VMSample:
    return VMSample(
        name=name,
        uuid=f"uuid-{name}",
        state="running",
        vcpus=4,
        memory_bytes=memory,
        memory_used_bytes=used,
        cpu_time_ns=ns,
        **kw,  # type: ignore[arg-type]
    )


def sample(ep: HostEndpoint, at: float, *vms: VMSample) -> HostSample:
    return HostSample(endpoint=ep, sampled_at=at, node=NODE, vms=vms)


def down(ep: HostEndpoint) -> HostSample:
    return HostSample(
        endpoint=ep, sampled_at=0.0, error=CollectError(ep.name, "timeout", "no answer within 5 s")
    )


A = HostEndpoint("a", "qemu+tls://a/system", labels={"rack": "r1"})
B = HostEndpoint("b", "qemu+tls://b/system", cpus=24.0, memory_bytes=200 * GIB, disk_capacity_bytes=500 * GIB)


def tick(state: WindowState, samples: list[HostSample], now: float):  # type: ignore[no-untyped-def]
    state = advance(state, samples, window=2, history=3, spread=3)
    return state, build_snapshot(samples, state, now)


def test_hosts_report_the_node_or_the_endpoint_overrides() -> None:
    _, snap = tick(WindowState(), [sample(A, 0.0), sample(B, 0.0)], 1700000000.0)
    a, b = snap.hosts
    assert snap.taken_at == 1700000000.0
    assert (a.cpus, a.memory_bytes, a.disk_capacity_bytes, a.disk_free_bytes) == (
        32.0,
        256 * GIB,
        1000 * GIB,
        700 * GIB,
    )
    assert (a.cpu_model, a.hypervisor, a.hypervisor_version, a.labels) == (
        "Skylake-Server-IBRS",
        "QEMU",
        7_002_000,
        {"rack": "r1"},
    )
    assert (b.cpus, b.memory_bytes, b.disk_capacity_bytes) == (24.0, 200 * GIB, 500 * GIB)
    assert b.disk_free_bytes == 500 * GIB - 300 * GIB  # the override minus what the pools hold
    assert a.memory_free_bytes == b.memory_free_bytes == 100 * GIB


def test_vm_values_are_smoothed_except_the_memory_it_holds() -> None:
    s, _ = tick(WindowState(), [sample(A, 0.0, vm("x", 0, used=2 * GIB, memory=8 * GIB))], 0.0)
    s, _ = tick(s, [sample(A, 1.0, vm("x", 3 * 10**9, used=4 * GIB, memory=8 * GIB))], 1.0)
    s, snap = tick(s, [sample(A, 2.0, vm("x", 4 * 10**9, used=6 * GIB, memory=6 * GIB))], 2.0)
    x = snap.vm("x")
    assert x.cpu_cores == (3.0 + 1.0) / 2  # window=2
    assert x.cpu_std_cores == 1.0  # population std-dev of the rates 3 and 1 (spread window 3)
    assert snapshot_from_json(snapshot_to_json(snap)).vm("x").cpu_std_cores == 1.0
    assert x.memory_used_bytes == 5 * GIB  # mean of the last two
    assert x.memory_bytes == 6 * GIB  # as held now
    assert snap.host("a").cpu_history == (0.0, 3.0, 2.0)
    assert snap.host("a").memory_history == (2 * GIB, 3 * GIB, 5 * GIB)


def test_a_down_host_keeps_last_known_capacity_and_history_but_lists_no_vms() -> None:
    s, _ = tick(WindowState(), [sample(A, 0.0, vm("x", 0, GIB)), sample(B, 0.0)], 0.0)
    s, snap = tick(s, [down(A), sample(B, 1.0)], 60.0)
    a = snap.host("a")
    assert a.state == HostState.DOWN
    assert a.error == "a: timeout: no answer within 5 s"
    assert (a.cpus, a.memory_bytes, a.cpu_history) == (32.0, 256 * GIB, (0.0,))
    assert snap.vms_on("a") == ()
    assert not a.usable


def test_a_host_never_seen_is_down_with_zero_capacity() -> None:
    _, snap = tick(WindowState(), [down(A)], 0.0)
    a = snap.host("a")
    assert (a.state, a.cpus, a.memory_bytes, a.cpu_history) == (HostState.DOWN, 0.0, 0, ())


def test_backing_files_are_pool_volumes_plus_the_ones_vms_use() -> None:
    _, snap = tick(WindowState(), [sample(A, 0.0, vm("x", 0, GIB, disks=(DISK,)))], 0.0)
    assert snap.host("a").backing_files == ("/img/_base/a.qcow2", "/img/_base/b.qcow2")


def test_vm_facts_pass_through_and_vms_are_sorted_by_name_per_host() -> None:
    tags = VMTags(exclude=True, pin_hosts=("a",), groups=("g",))
    samples = [
        sample(A, 0.0, vm("zeta", 0, GIB), vm("alpha", 0, GIB, tags=tags, migrating=True, persistent=False)),
        sample(B, 0.0, vm("mid", 0, GIB, dirty_rate_bytes_s=5e6, disks=(DISK,))),
    ]
    _, snap = tick(WindowState(), samples, 0.0)
    assert [v.name for v in snap.vms] == ["alpha", "zeta", "mid"]
    alpha = snap.vm("alpha")
    assert (alpha.tags, alpha.migrating, alpha.persistent, alpha.host) == (tags, True, False, "a")
    assert snap.vm("mid").dirty_rate_bytes_s == 5e6
    assert snap.vm("mid").disks == (DISK,)
    assert snapshot_from_json(snapshot_to_json(snap)) == snap


def test_vm_seen_on_two_hosts_during_migration_is_kept_once_as_in_flight() -> None:
    from balancer.metrics.snapshot import _one_copy_each
    from tests.builders import vm

    source = vm(name="web", uuid="u-1", host="h1", state="running")
    incoming = vm(name="web", uuid="u-1", host="h2", state="paused")
    other = vm(name="db", uuid="u-2", host="h2", state="running")
    kept = _one_copy_each([incoming, other, source])
    assert [(v.name, v.host, v.migrating) for v in kept] == [("web", "h1", True), ("db", "h2", False)]
