"""The catalog's tables (SQLAlchemy Core). Changed only through ``migrations.py``."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Counters are BIGINT: PostgreSQL's INTEGER overflows at 2**31 (bytes of one busy dataset).

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("type", String(50), nullable=False),
    Column("ingestion_id", String(200), nullable=False),
    Column("config", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("ingestion_id", String(200), primary_key=True),
    Column("source_type", String(50), nullable=False),
    Column("record_count", BigInteger, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("first_seen", DateTime(timezone=True)),
    Column("last_seen", DateTime(timezone=True)),
    Column("schema_version", Integer, nullable=False, default=0),
    # Distinct sensor ids: a ``sketch.DistinctSketch`` (NULL until a sensor id was seen) and
    # its estimate, kept beside it so listing datasets never decodes sketches.
    Column("sensor_sketch", LargeBinary),
    Column("distinct_sensors", BigInteger, nullable=False, default=0),
)

fields = Table(
    "fields",
    metadata,
    Column("ingestion_id", String(200), primary_key=True),
    Column("path", String(500), primary_key=True),
    Column("type", String(20), nullable=False),
    Column("nullable", Boolean, nullable=False, default=False),
    Column("samples", JSON, nullable=False),
    Column("min_value", Float),
    Column("max_value", Float),
    Column("first_seen", DateTime(timezone=True)),
    Column("last_seen", DateTime(timezone=True)),
    # Records that carried the path (see FieldInfo.count for when it is estimated).
    Column("records", BigInteger, nullable=False, default=0),
    # A ``not_seen`` event was logged; cleared when the field shows up again (re-arms it).
    Column("stale", Boolean, nullable=False, default=False),
)

normalization_rules = Table(
    "normalization_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("raw_key", String(500), nullable=False),
    Column("canonical_key", String(500), nullable=False),
    # Empty string (not NULL) means global, so the unique constraint also covers global rules.
    Column("ingestion_id", String(200), nullable=False, default=""),
    Column("priority", Integer, nullable=False, default=100),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("rows_affected", BigInteger, nullable=False, default=0),
    Column("last_applied", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("raw_key", "ingestion_id", name="uq_rule_raw_key_scope"),
)

computations = Table(
    "computations",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("sql", Text, nullable=False),
    Column("tile_type", String(20), nullable=False, default="table"),
    Column("tile_config", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Typed parameters: [{"name", "type", "default", "description"}], bound by Spark.
    Column("parameters", JSON),
    # The computation's own label, used instead of the derived one; NULL: derived per run.
    Column("sensitivity", String(20)),
    # True when an admin saved a label below the derived one: runs then use it as it is;
    # otherwise a label can only raise the derived one.
    Column("declassified", Boolean, nullable=False, default=False),
    Column("owner", String(64)),
)

loss_accounting = Table(
    "loss_accounting",
    metadata,
    Column("ingestion_id", String(200), primary_key=True),
    Column("received", BigInteger, nullable=False, default=0),
    Column("written", BigInteger, nullable=False, default=0),
    Column("flagged", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("gaps", BigInteger, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

devices = Table(
    "devices",
    metadata,
    # An exact ingestion_id or an fnmatch wildcard ("air-*"); exact matches win at lookup.
    Column("ingestion_id", String(200), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("sensitivity", String(20), nullable=False, default="internal"),
    Column("retention_days", Integer),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

value_rules = Table(
    "value_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("field", String(500), nullable=False),
    Column("config", JSON, nullable=False),
    # Empty string means global, as for normalization_rules.
    Column("ingestion_id", String(200), nullable=False, default=""),
    Column("priority", Integer, nullable=False, default=100),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("status", Text),
    Column("last_error", Text),
    Column("rows_affected", BigInteger, nullable=False, default=0),
    Column("last_applied_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("field", String(500), nullable=False),
    Column("op", String(10), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("ingestion_id", String(200), nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

stream_computations = Table(
    "stream_computations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("sql", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    # Rises with every change of ``sql``: the engine restarts the computation from scratch.
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Ids are never reused (SQLite would otherwise reuse the largest after a delete): a
    # re-created name must not resume the old computation's checkpoint.
    sqlite_autoincrement=True,
)

rule_usage_batches = Table(
    "rule_usage_batches",
    metadata,
    # "<query id>:<batch id>": a replayed micro-batch records its rule usage only once.
    Column("batch_key", String(300), primary_key=True),
    # Indexed: keys older than a day are pruned (a replay follows its failure within minutes).
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
)

schema_events = Table(
    "schema_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ingestion_id", String(200), nullable=False, index=True),
    Column("path", String(500), nullable=False),
    Column("kind", String(20), nullable=False),  # added | widened | not_seen
    Column("old_type", String(20)),
    Column("new_type", String(20)),
    Column("sample", JSON),
    Column("schema_version", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    # argon2id, with its parameters in the hash; NULL for a token-only user.
    Column("password_hash", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # SHA-256 of the token value: tokens are random, so a fast hash is enough (see users.py).
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user", String(64), nullable=False, index=True),
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("user", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("sensitivity", String(20), nullable=False),
    Column("computation", String(200)),
    Column("sql", Text, nullable=False),
    Column("tables", JSON, nullable=False),
    Column("devices", JSON, nullable=False),
    Column("rows", Integer, nullable=False),
)

dashboards = Table(
    "dashboards",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("owner", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

tiles = Table(
    "tiles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dashboard", String(64), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("computation", String(200), nullable=False),
    Column("viz", String(20), nullable=False),
    Column("config", JSON, nullable=False),
    Column("parameters", JSON, nullable=False),
    # Grid position in a 12-column layout: column, row, width, height (in rows).
    Column("x", Integer, nullable=False),
    Column("y", Integer, nullable=False),
    Column("w", Integer, nullable=False),
    Column("h", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

# One row per alert rule and sensor: firing or resolved, and who acknowledged the episode.
alert_states = Table(
    "alert_states",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, nullable=False),
    Column("ingestion_id", String(200), nullable=False),
    Column("sensor_id", String(200), nullable=False),
    Column("status", String(10), nullable=False),
    Column("value", Float),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("fired_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("episodes", BigInteger, nullable=False, default=1),
    Column("acknowledged_by", String(64)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("sensitivity", String(20), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("rule_id", "ingestion_id", "sensor_id", name="uq_alert_state"),
    sqlite_autoincrement=True,
)
