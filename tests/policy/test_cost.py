"""Cost model: overlays + missing backing files + RAM × re-send factor; seconds at the cap; convergence."""

from __future__ import annotations

import numpy as np
import pytest

from balancer.model import PlannerState
from balancer.policy import PlanArgs, plan
from balancer.policy.cost import resend_factor
from balancer.reasons import Reason
from tests.builders import BASE, GIB, MIB, NOW, backing, disk, host, snapshot, vm

BW = 100 * MIB


def test_resend_factor_is_a_capped_geometric_series() -> None:
    dirty = np.array([0.0, 50 * MIB, 90 * MIB, 100 * MIB, 500 * MIB])
    f = resend_factor(dirty, BW, 3.0)
    assert f[0] == 1.0  # unknown dirty rate
    assert f[1] == pytest.approx(2.0)  # 1 / (1 - 0.5)
    assert f[2] == 3.0  # 1 / 0.1 = 10, capped
    assert f[3] == 3.0 and f[4] == 3.0  # never converges: the cap


def drain_one(v, target_bases: tuple[str, ...] = (BASE,), bw: int = 100):  # type: ignore[no-untyped-def]
    snap = snapshot(
        [host("a", state="draining"), host("b", backing_files=target_bases)],
        [v],
    )
    return plan(snap, PlannerState(), PlanArgs(bandwidth_mib_s=bw), NOW)


def test_incremental_copy_when_the_target_holds_the_backing_file() -> None:
    p = drain_one(vm("v", "a", memory_bytes=4 * GIB, dirty_rate_bytes_s=50 * MIB))
    (m,) = p.moves
    assert m.cost.disk_bytes == 5 * GIB and m.cost.backing_bytes == 0
    assert m.cost.memory_bytes == 8 * GIB  # 4 GiB × 1/(1 − 0.5)
    assert m.cost.copy_mode == "incremental" and m.cost.converges
    assert m.cost.seconds == pytest.approx(13 * GIB / BW)


def test_missing_backing_file_is_copied_first_and_counted() -> None:
    p = drain_one(vm("v", "a"), target_bases=())
    (m,) = p.moves
    assert m.cost.backing_bytes == 2 * GIB
    assert m.cost.total_bytes == 5 * GIB + 2 * GIB + 4 * GIB


def test_shared_backing_is_copied_once_per_target() -> None:
    snap = snapshot(
        [host("a", state="draining"), host("b", backing_files=())],
        [vm("v1", "a"), vm("v2", "a")],
    )
    p = plan(snap, PlannerState(), PlanArgs(), NOW)
    assert sorted(m.cost.backing_bytes for m in p.moves) == [0, 2 * GIB]


def test_flat_disk_is_a_full_copy() -> None:
    p = drain_one(vm("v", "a", disks=(disk(allocated_bytes=7 * GIB, backing_files=()),)))
    (m,) = p.moves
    assert m.cost.copy_mode == "full" and m.cost.disk_bytes == 7 * GIB and m.cost.backing_bytes == 0


def test_target_holding_the_chain_is_preferred() -> None:
    other = backing("/images/_base/other.qcow2", 8 * GIB)
    v = vm("v", "a", disks=(disk(backing_files=(other,)),))
    snap = snapshot([host("a", state="draining"), host("b"), host("c", backing_files=(other.path,))], [v])
    (m,) = plan(snap, PlannerState(), PlanArgs(), NOW).moves
    assert m.target == "c" and m.cost.backing_bytes == 0


def test_non_converging_vm_is_drained_but_flagged() -> None:
    p = drain_one(vm("v", "a", dirty_rate_bytes_s=200 * MIB))
    (m,) = p.moves
    assert not m.cost.converges and m.flags == (Reason.WOULD_NOT_CONVERGE,)
    assert m.cost.memory_bytes == 3 * 4 * GIB  # memory_resend_cap
    assert "not to converge" in m.detail
