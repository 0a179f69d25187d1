"""Pure mapping of one bulk-stats record + domain XML to a VMSample, with QEMU-shaped records.

The test driver's ``getAllDomainStats`` returns only ``state.*``, so the fields a QEMU host reports
(cpu.time, balloon.*, vcpu.*, block.<n>.* with the backing chain, dirtyrate.*) are exercised here
with records shaped like libvirt 9.0 + QEMU returns them.
"""

from __future__ import annotations

import libvirt
import pytest

from balancer.metrics import domain
from balancer.model import VMTags

GIB = 1 << 30
MIB = 1 << 20

XML = """
<domain type='kvm'>
  <name>vm</name>
  <metadata>
    <balancer:rules xmlns:balancer="https://balancer.dev/xmlns/1">
      <balancer:exclude/><balancer:pin host="h1"/><balancer:pin host="h2"/><balancer:group name="db"/>
    </balancer:rules>
    <other:thing xmlns:other="https://example.com/x"><other:pin host="ignored"/></other:thing>
  </metadata>
  <currentMemory unit='KiB'>4194304</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/vm.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='qcow2'/>
        <source file='/img/_base/base.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/vm-data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sda' bus='sata'/>
    </disk>
  </devices>
</domain>
"""

QEMU_RECORD = {
    "state.state": 1,
    "state.reason": 1,
    "cpu.time": 123_000_000_000,
    "balloon.current": 4_194_304,
    "balloon.maximum": 4_194_304,
    "balloon.rss": 3_000_000,
    "balloon.available": 4_000_000,
    "balloon.unused": 1_500_000,
    "vcpu.current": 2,
    "vcpu.maximum": 4,
    "block.count": 3,
    "block.0.name": "vda",
    "block.0.path": "/img/vm.qcow2",
    "block.0.backingIndex": 2,
    "block.0.allocation": 3 * GIB + 12345,
    "block.0.capacity": 20 * GIB,
    "block.0.physical": 3 * GIB,
    "block.1.name": "vda",
    "block.1.path": "/img/_base/base.qcow2",
    "block.1.backingIndex": 3,
    "block.1.capacity": 10 * GIB,
    "block.1.physical": 2 * GIB,
    "block.2.name": "vdb",
    "block.2.allocation": 7 * GIB,
    "block.2.capacity": 50 * GIB,
    "dirtyrate.calc_status": 2,
    "dirtyrate.megabytes_per_second": 25,
}


def sample(record: dict[str, object], **kw: object) -> domain.VMSample:
    return domain.vm_sample("vm", "u-1", record, domain.parse_domain_xml(XML), **kw)  # type: ignore[arg-type]


def test_qemu_record_gives_counters_memory_and_dirty_rate() -> None:
    v = sample(QEMU_RECORD)
    assert (v.state, v.vcpus, v.cpu_time_ns) == ("running", 2, 123_000_000_000)
    assert v.memory_bytes == 4 * GIB  # balloon.current
    assert v.memory_used_bytes == (4_000_000 - 1_500_000) * 1024  # available - unused
    assert v.dirty_rate_bytes_s == 25 * MIB
    assert v.tags == VMTags(exclude=True, pin_hosts=("h1", "h2"), groups=("db",))
    assert not domain.needs_info(QEMU_RECORD)


def test_block_stats_price_top_and_backing_by_path_preferring_physical() -> None:
    vda, vdb = sample(QEMU_RECORD).disks
    assert (vda.path, vda.virtual_bytes, vda.allocated_bytes) == ("/img/vm.qcow2", 20 * GIB, 3 * GIB)
    assert [(b.path, b.format, b.allocated_bytes) for b in vda.backing] == [
        ("/img/_base/base.qcow2", "qcow2", 2 * GIB)  # no allocation for a read-only image: physical
    ]
    # a network disk has no path in the stats: matched by target and position, allocation used
    assert (vdb.path, vdb.format, vdb.allocated_bytes, vdb.virtual_bytes) == (
        "pool/vm-data",
        "raw",
        7 * GIB,
        50 * GIB,
    )


def test_rss_is_used_when_the_guest_reports_no_available_memory() -> None:
    record = {k: v for k, v in QEMU_RECORD.items() if k not in ("balloon.available", "balloon.unused")}
    assert sample(record).memory_used_bytes == 3_000_000 * 1024


def test_without_balloon_or_cpu_stats_the_info_fallback_is_used() -> None:
    record = {"state.state": 1, "state.reason": 0}
    assert domain.needs_info(record)
    v = sample(record, info=[1, 8_388_608, 2_097_152, 3, 55_000])
    assert (v.vcpus, v.memory_bytes, v.memory_used_bytes, v.cpu_time_ns) == (3, 2 * GIB, 2 * GIB, 55_000)
    assert v.dirty_rate_bytes_s == 0.0


def test_without_any_fallback_the_xml_sizes_are_used_and_cpu_is_unknown() -> None:
    v = sample({"state.state": 1})
    assert (v.vcpus, v.memory_bytes, v.cpu_time_ns) == (2, 4 * GIB, None)


def test_a_dirty_rate_still_measuring_reads_as_zero() -> None:
    assert sample({**QEMU_RECORD, "dirtyrate.calc_status": 1}).dirty_rate_bytes_s == 0.0


@pytest.mark.parametrize(
    ("state", "reason", "migrating"),
    [
        (1, 1, False),  # running, booted
        (1, 2, False),  # running, migrated: the incoming migration has finished
        (1, 10, True),  # running, post-copy
        (1, 11, True),  # running, post-copy failed: never touch
        (3, 1, False),  # paused by the user
        (3, 2, True),  # paused for migration (incoming side before switch-over)
        (3, 12, True),  # paused in post-copy
        (5, 0, False),  # shut off
    ],
)
def test_migrating_from_the_state_reason(state: int, reason: int, migrating: bool) -> None:
    assert sample({**QEMU_RECORD, "state.state": state, "state.reason": reason}).migrating is migrating


def test_an_active_migration_job_marks_the_vm_migrating() -> None:
    assert sample(QEMU_RECORD, job_migrating=True).migrating


@pytest.mark.parametrize(
    ("job", "migrating"),
    [
        ({"type": libvirt.VIR_DOMAIN_JOB_NONE}, False),
        (
            {
                "type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED,
                "operation": libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT,
            },
            True,
        ),
        (
            {
                "type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED,
                "operation": libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN,
            },
            True,
        ),
        ({"type": libvirt.VIR_DOMAIN_JOB_BOUNDED, "operation": libvirt.VIR_DOMAIN_JOB_OPERATION_DUMP}, False),
        ({"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED}, True),  # operation unknown: assume the worst
    ],
)
def test_job_stats_mean_migrating_only_for_migration_jobs(job: dict[str, int], migrating: bool) -> None:
    assert domain.job_is_migration(job) is migrating


def test_numeric_libvirt_constants_match_the_binding() -> None:
    operations = {
        libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN,
        libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT,
    }
    assert operations == domain.JOB_MIGRATION_OPERATIONS
    reasons = {
        (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY),
        (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED),
    }
    assert reasons == domain.MIGRATING_REASONS
    assert domain.STATE_NAMES.index("shutoff") == libvirt.VIR_DOMAIN_SHUTOFF
    assert domain.DIRTYRATE_MEASURED == libvirt.VIR_DOMAIN_DIRTYRATE_MEASURED


def test_volume_sizes_fill_images_without_block_stats() -> None:
    spec = domain.parse_domain_xml(XML)
    block = domain.BlockStats.of({"state.state": 1})
    assert domain.missing_paths(spec, block) == ["/img/vm.qcow2", "/img/_base/base.qcow2", "pool/vm-data"]
    volumes = {"/img/_base/base.qcow2": domain.ImageBytes(capacity=10 * GIB, allocated=GIB)}
    vda, _ = domain.build_disks(spec, block, volumes)
    assert (vda.allocated_bytes, vda.backing[0].allocated_bytes) == (0, GIB)


def test_xml_units_and_missing_pieces() -> None:
    spec = domain.parse_domain_xml(
        "<domain><currentMemory unit='MiB'>512</currentMemory><vcpu>3</vcpu>"
        "<devices><disk device='disk'><target dev='vda'/></disk></devices></domain>"
    )
    assert (spec.memory_bytes, spec.vcpus, spec.disks) == (512 * MIB, 3, ())  # a disk without source
