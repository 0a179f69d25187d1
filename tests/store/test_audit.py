"""The audit log: entries written by callers, filtered and newest first."""

from __future__ import annotations

from balancer.store import AuditEntry, Store


def test_entries_are_kept_with_their_detail_and_filtered(store: Store) -> None:
    first = store.audit("alice", "config.reload", "service", now=10.0, detail={"hosts": ["n1", "n2"], "n": 2})
    store.audit("bob", "migration.abort", "migration/m1", now=20.0)
    store.audit("alice", "migration.abort", "migration/m2", now=30.0, detail={"why": "ünïcode"})

    assert first == AuditEntry(
        first.id, 10.0, "alice", "config.reload", "service", {"hosts": ["n1", "n2"], "n": 2}
    )
    assert [e.at for e in store.audit_log()] == [30.0, 20.0, 10.0]
    assert [e.subject for e in store.audit_log(actor="alice")] == ["migration/m2", "service"]
    assert [e.actor for e in store.audit_log(since=20.0)] == ["alice", "bob"]
    assert store.audit_log(subject="migration/m1")[0].detail == {}
    assert store.audit_log(limit=1)[0].detail == {"why": "ünïcode"}
