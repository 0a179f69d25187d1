"""Cleanup returns what it removed, kept (and why) and could not do; libvirt's test driver as the host.

Host "a" of tests/data/testdriver has a dir pool /var/lib/libvirt/images and running domains on
web1.qcow2, web2.qcow2 (over _base/ubuntu-22.04.qcow2) and others. One LibvirtHypervisor keeps its
connection, so the volumes a test creates stay for that test only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from balancer.executor.artifacts import BackingRegistry
from balancer.executor.cleanup import Cleanup, Kept, remove_move_volumes, remove_source_disks, sweep_leftovers
from balancer.executor.facts import ChainLink, MigrationEndpoint
from balancer.executor.libvirt_hypervisor import LibvirtHypervisor
from balancer.store import Store
from tests.leader import journal_of

HOST_A = Path(__file__).resolve().parents[1] / "data" / "testdriver" / "host-a.xml"
IMAGES = "/var/lib/libvirt/images"
IN_USE = f"{IMAGES}/web1.qcow2"  # web1's disk
GIB = 1 << 30


@pytest.fixture
def hv() -> LibvirtHypervisor:
    uri = f"test://{HOST_A}"
    return LibvirtHypervisor(MigrationEndpoint("a", uri, uri))


@pytest.fixture
def registry(store: Store) -> BackingRegistry:
    return BackingRegistry(journal_of(store), finished=lambda rid: rid.startswith("done-"))


def made(
    hv: LibvirtHypervisor,
    registry: BackingRegistry,
    rid: str,
    name: str,
    kind: str = "disk",
    backing: str = "",
) -> str:  # type: ignore[no-untyped-def]
    """A volume move ``rid`` made, listed in the ledger first, as the executor does."""
    path = f"{IMAGES}/{name}"
    registry.intend("a", path, kind, rid)  # type: ignore[arg-type]
    hv.create_volume("images", name, GIB, "qcow2", ChainLink(backing, "qcow2") if backing else None)
    return path


def test_removes_what_the_move_made_newest_first_and_reports_it(hv, registry, store) -> None:  # type: ignore[no-untyped-def]
    base = made(hv, registry, "m1", "base.qcow2", "backing")
    top = made(hv, registry, "m1", "top.qcow2", backing=base)
    done = remove_move_volumes([base, top], hv, registry, "m1")
    assert done == Cleanup("a", removed=(top, base))  # the overlay first, then what it backed
    assert hv.volume(base) is None and hv.volume(top) is None
    assert store.target_volumes() == ()
    assert done.describe() == f"removed on a: {top}, {base}"


def test_keeps_what_is_in_use_backs_another_volume_or_another_move_relies_on(hv, registry, store) -> None:  # type: ignore[no-untyped-def]
    registry.intend("a", IN_USE, "disk", "m1")
    base = made(hv, registry, "m1", "base.qcow2", "backing")
    made(hv, registry, "m2", "other.qcow2", backing=base)
    held = made(hv, registry, "m1", "held.qcow2", "backing")
    registry.hold("a", held, +1)
    done = remove_move_volumes([IN_USE, base, held], hv, registry, "m1")
    assert done.removed == ()
    assert set(done.kept) == {
        Kept(IN_USE, "used by a domain"),
        Kept(base, "backs other volumes"),
        Kept(held, "another move relies on it"),
    }
    assert {v.path for v in store.target_volumes(record_id="m1")} == {IN_USE, base, held}  # still the move's
    assert "kept on a:" in done.describe() and "(backs other volumes)" in done.describe()
    assert remove_move_volumes([held], hv, registry, "m1", own_holds=1).removed == (held,)


def test_never_removes_what_the_ledger_does_not_say_the_move_made(hv, registry) -> None:  # type: ignore[no-untyped-def]
    theirs = made(hv, registry, "m2", "theirs.qcow2")
    hv.create_volume("images", "unlisted.qcow2", GIB, "qcow2", None)
    done = remove_move_volumes([theirs, f"{IMAGES}/unlisted.qcow2"], hv, registry, "m1")
    assert done == Cleanup("a")
    assert hv.volume(theirs) is not None and hv.volume(f"{IMAGES}/unlisted.qcow2") is not None


def test_a_volume_already_gone_is_forgotten_silently(hv, registry, store) -> None:  # type: ignore[no-untyped-def]
    path = f"{IMAGES}/never-created.qcow2"
    registry.intend("a", path, "disk", "m1")  # killed between the ledger row and the create call
    assert remove_move_volumes([path], hv, registry, "m1") == Cleanup("a")
    assert store.target_volumes() == ()


def test_on_success_the_vms_disk_is_handed_over_and_a_verified_base_stays_listed(hv, registry, store) -> None:  # type: ignore[no-untyped-def]
    registry.intend("a", IN_USE, "disk", "m1")
    base = f"{IMAGES}/_base/ubuntu-22.04.qcow2"  # web1 runs on it
    registry.verified("a", hv.volume(base), "m1", "ab" * 32)  # type: ignore[arg-type]
    spare = made(hv, registry, "m1", "spare.qcow2")
    done = remove_move_volumes([base, IN_USE, spare], hv, registry, "m1", hand_over=True)
    assert done == Cleanup("a", removed=(spare,))
    assert [(v.path, v.state) for v in store.target_volumes()] == [(base, "verified")]


def test_an_unproven_base_a_domain_uses_is_a_problem_for_a_human(hv, registry) -> None:  # type: ignore[no-untyped-def]
    base = f"{IMAGES}/_base/ubuntu-22.04.qcow2"
    registry.intend("a", base, "backing", "m1")
    done = remove_move_volumes([base], hv, registry, "m1", hand_over=True)
    assert done.removed == () and not done.clean
    assert "never proven complete" in done.problems[0]


def test_sweep_removes_leftovers_of_finished_moves_only(hv, registry, store) -> None:  # type: ignore[no-untyped-def]
    old = made(hv, registry, "done-1", "old.qcow2", "backing")
    live = made(hv, registry, "m9", "live.qcow2", "backing")
    done = sweep_leftovers(hv, registry)
    assert done == Cleanup("a", removed=(old,))
    assert hv.volume(live) is not None and [v.path for v in store.target_volumes()] == [live]


def test_source_disks_after_a_success(hv) -> None:  # type: ignore[no-untyped-def]
    hv.create_volume("images", "gone-vm.qcow2", GIB, "qcow2", None)
    done = remove_source_disks([f"{IMAGES}/gone-vm.qcow2", IN_USE, f"{IMAGES}/nothing.qcow2"], hv)
    assert done == Cleanup("a", removed=(f"{IMAGES}/gone-vm.qcow2",), kept=(Kept(IN_USE, "still used"),))


def test_a_host_that_cannot_be_asked_is_a_problem_and_nothing_is_removed(registry) -> None:  # type: ignore[no-untyped-def]
    down = LibvirtHypervisor(MigrationEndpoint("b", "qemu+unix:///system?socket=/nonexistent", "x"))
    registry.intend("b", f"{IMAGES}/x.qcow2", "disk", "m1")
    done = remove_move_volumes([f"{IMAGES}/x.qcow2"], down, registry, "m1")
    assert done.removed == () and len(done.problems) == 1 and "cannot list domains" in done.problems[0]
    assert registry.row("b", f"{IMAGES}/x.qcow2") is not None  # still listed: a later sweep retries
