"""Durable state: drain requests, plans, the migration journal, the audit log, the leader lease.

SQLite by default (one file, WAL), PostgreSQL for HA; SQLAlchemy Core underneath. ``Store.open(url)``
migrates the schema; every ``Store`` method is one committed transaction.

::

    store.py       Store: the methods, one transaction each
    records.py     what they return: DrainRequest, PlanRow, PlanMoveRow, AuditEntry, Lease, states
    drains.py      plans.py  journal.py  audit.py  lease.py     the SQL of each part
    tables.py      the tables (latest schema) for queries
    migrations.py  the ordered schema steps and the ``schema_version`` table
    db.py          engine, transactions, SQLite pragmas; the only place SQLAlchemy errors are caught
"""

from balancer.errors import Conflict, NotFound, StoreError
from balancer.store.records import (
    AuditEntry,
    Automation,
    Blocker,
    DrainProgress,
    DrainRequest,
    DrainState,
    Lease,
    MoveStatus,
    PlanMoveRow,
    PlanRow,
    PlanStatus,
)
from balancer.store.store import FencedJournal, Store

__all__ = [
    "AuditEntry",
    "Automation",
    "Blocker",
    "Conflict",
    "DrainProgress",
    "DrainRequest",
    "DrainState",
    "FencedJournal",
    "Lease",
    "MoveStatus",
    "NotFound",
    "PlanMoveRow",
    "PlanRow",
    "PlanStatus",
    "Store",
    "StoreError",
]
