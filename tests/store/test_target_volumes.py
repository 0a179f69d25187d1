"""The ledger of volumes moves created on targets, and the schema step that brought it (from version 1)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text

from balancer.errors import StoreError
from balancer.model import TargetVolume
from balancer.store import Store
from balancer.store.db import Database, create
from balancer.store.migrations import LATEST, STEPS, migrate
from tests.leader import fence_of

from .builders import record

BASE = "/var/lib/libvirt/base/base.raw"


def row(**kw: object) -> TargetVolume:
    values: dict[str, object] = dict(
        host="h2", path=BASE, kind="backing", state="provisional", record_id="m1", updated_at=1.0
    )
    values.update(kw)
    return TargetVolume(**values)  # type: ignore[arg-type]


def test_a_row_round_trips_and_a_proof_replaces_the_provisional_row(store: Store) -> None:
    store.save_target_volume(row(), fence=fence_of(store))
    assert store.target_volume("h2", BASE) == row()
    proof = row(
        state="verified", sha256="ab" * 32, length=1 << 27, capacity=1 << 27, mtime="17.5", updated_at=2.0
    )
    store.save_target_volume(proof, fence=fence_of(store))
    assert store.target_volume("h2", BASE) == proof
    assert store.target_volume("h3", BASE) is None


def test_rows_by_host_record_and_state(store: Store) -> None:
    store.save_target_volume(row(), fence=fence_of(store))
    store.save_target_volume(row(host="h3", state="verified", record_id="m2"), fence=fence_of(store))
    store.save_target_volume(row(path="/var/lib/libvirt/images/a.qcow2", kind="disk"), fence=fence_of(store))
    assert [(v.host, v.path) for v in store.target_volumes(host="h2")] == [
        ("h2", BASE),
        ("h2", "/var/lib/libvirt/images/a.qcow2"),
    ]
    assert [v.host for v in store.target_volumes(record_id="m2")] == ["h3"]
    assert len(store.target_volumes(state="provisional")) == 2


def test_only_the_owning_move_forgets_a_row(store: Store) -> None:
    store.save_target_volume(row(record_id="m2"), fence=fence_of(store))
    assert (
        store.forget_target_volume("h2", BASE, "m1", fence=fence_of(store)) is False
    )  # another move owns it now
    assert store.forget_target_volume("h2", BASE, "m2", fence=fence_of(store)) is True
    assert store.target_volumes() == ()


def test_an_unknown_state_is_refused_on_read(store: Store) -> None:
    store.save_target_volume(replace(row(), state="halfway"), fence=fence_of(store))  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=r"target_volumes\.state"):
        store.target_volume("h2", BASE)


def test_a_version_1_journal_gains_the_new_columns_with_defaults(store_url: str) -> None:
    db = Database(create(store_url))
    try:
        with db.write("v1") as conn:
            assert migrate(conn, 1.0, STEPS[:1]) == (1,)
            conn.execute(
                text(
                    "INSERT INTO migrations (id, vm, source, target, reason, state, created_at, updated_at,"
                    " detail, created_volumes) VALUES ('old', 'vm1', 'n1', 'n2', 'balance', 'failed', 1, 1,"
                    " '', '[\"/x.qcow2\"]')"
                )
            )
        with db.write("upgrade") as conn:
            assert migrate(conn, 2.0) == tuple(s.version for s in STEPS[1:])
    finally:
        db.close()
    with Store.open(store_url) as store:
        assert store.schema_version() == LATEST
        old = store.get_record("old")
        assert (old.created_volumes, old.target_domain, old.removed_volumes) == (("/x.qcow2",), "", ())
        store.save_record(replace(record("new"), removed_volumes=("/y",)))
        assert store.get_record("new").removed_volumes == ("/y",)
