"""The tables as SQLAlchemy Core objects, at the latest schema version; queries are built from these.

The DDL that creates and alters them lives in ``migrations.py`` (each step frozen in time); a test
checks that a freshly migrated database has exactly these columns. Instants are epoch seconds
(DOUBLE PRECISION), JSON is JSONB on PostgreSQL and TEXT on SQLite.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
Json = JSON().with_variant(JSONB(), "postgresql")
Instant = Float(precision=53)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("applied_at", Instant, nullable=False),
)

drains = Table(
    "drains",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("host", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("deadline", Instant),
    Column("closed_at", Instant),
    Column("closed_by", Text),
    Column("note", Text, nullable=False),
    Column("progress", Json),
    Column("updated_at", Instant, nullable=False),
)

plans = Table(
    "plans",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("created_at", Instant, nullable=False),
    Column("status", Text, nullable=False),
    Column("automation", Text, nullable=False),
    Column("plan", Json, nullable=False),
    Column("decided_by", Text),
    Column("decided_at", Instant),
    Column("updated_at", Instant, nullable=False),
    Column("expires_at", Instant),
)

plan_moves = Table(
    "plan_moves",
    metadata,
    Column("plan_id", BigInteger, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("vm", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("decided_by", Text),
    Column("decided_at", Instant),
    Column("migration_id", Text),
)

# One column per MigrationRecord field, same names.
migrations = Table(
    "migrations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("vm", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("updated_at", Instant, nullable=False),
    Column("vm_uuid", Text, nullable=False),
    Column("plan_id", BigInteger),
    Column("bandwidth_mib_s", Integer, nullable=False),
    Column("copy_mode", Text),
    Column("started_at", Instant),
    Column("finished_at", Instant),
    Column("predicted_bytes", BigInteger, nullable=False),
    Column("backing_bytes", BigInteger, nullable=False),
    Column("disk_bytes", BigInteger, nullable=False),
    Column("memory_bytes", BigInteger, nullable=False),
    Column("downtime_ms", Float(precision=53)),
    Column("outcome", Text),
    Column("error_code", Integer),
    Column("error_domain", Integer),
    Column("error_message", Text),
    Column("detail", Text, nullable=False),
    Column("created_volumes", Json, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("drain_id", BigInteger),
    Column("target_domain", Text, nullable=False),
    Column("removed_volumes", Json, nullable=False),
)

# Volumes moves created on targets, until removed or handed over (model.TargetVolume).
target_volumes = Table(
    "target_volumes",
    metadata,
    Column("host", Text, primary_key=True),
    Column("path", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("record_id", Text, nullable=False),
    Column("updated_at", Instant, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("capacity", BigInteger, nullable=False),
    Column("mtime", Text, nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", Instant, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("detail", Json, nullable=False),
)

leader = Table(
    "leader",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("expires_at", Instant, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("clock", Text, nullable=False),
)
