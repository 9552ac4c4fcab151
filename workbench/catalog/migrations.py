"""Versioned, explicit catalog migrations.

Each migration is a function ``(connection) -> None`` with a number and a name, applied once, in
order, inside a transaction, and recorded in ``schema_migrations``. Never alter tables at
start-up anywhere else. A later migration that changes a table must check the live schema
(``sqlalchemy.inspect``) before altering, because 0001 creates tables from ``tables.py`` as they
stand at the time it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy import Connection, Engine, insert, inspect, select, text

from workbench.catalog import tables as t
from workbench.catalog.examples import DEMO_DASHBOARD, EXAMPLE_COMPUTATIONS
from workbench.core.clock import utcnow

log = logging.getLogger(__name__)

#: Seed normalization defaults (from the original platform): raw spellings → canonical key.
DEFAULT_RULES: dict[str, list[str]] = {
    "sensorId": ["sensor_id", "sensorid", "sensor", "device_id", "deviceid", "id"],
    "temperature": ["temperature", "temp", "temp_c", "temperature_c"],
    "humidity": ["humidity", "hum", "rh", "relative_humidity"],
    "timestamp": ["timestamp", "ts", "time", "datetime", "event_time"],
}

#: The computation behind the demo dashboard's tile.
DEFAULT_COMPUTATIONS: list[dict[str, object]] = [
    {
        "name": "sensor_averages",
        "description": "Average temperature per sensor per minute (gold).",
        "sql": (
            "SELECT window_start, sensor_id, field, avg_value, count "
            "FROM gold.sensor_averages WHERE field = 'temperature' ORDER BY window_start"
        ),
        "tile_type": "timeseries",
        "tile_config": {"x": "window_start", "y": "avg_value", "color": "sensor_id"},
    }
]


def _initial_schema(conn: Connection) -> None:
    t.metadata.create_all(conn)


def _seed_defaults(conn: Connection) -> None:
    now = utcnow()
    priority = 0
    for canonical, raw_keys in DEFAULT_RULES.items():
        for raw in raw_keys:
            priority += 10
            conn.execute(
                insert(t.normalization_rules).values(
                    raw_key=raw,
                    canonical_key=canonical,
                    ingestion_id="",
                    priority=priority,
                    enabled=True,
                    rows_affected=0,
                    created_at=now,
                )
            )
    for comp in DEFAULT_COMPUTATIONS:
        conn.execute(insert(t.computations).values(**comp, created_at=now, updated_at=now))


def _loss_accounting(conn: Connection) -> None:
    t.loss_accounting.create(conn, checkfirst=True)


def _devices_and_rules(conn: Connection) -> None:
    for table in (t.devices, t.value_rules, t.alert_rules, t.rule_usage_batches):
        table.create(conn, checkfirst=True)


def _schema_evolution(conn: Connection) -> None:
    t.schema_events.create(conn, checkfirst=True)
    columns = {c["name"] for c in inspect(conn).get_columns(t.fields.name)}
    false = "false" if conn.dialect.name == "postgresql" else "0"
    if "records" not in columns:
        conn.execute(text("ALTER TABLE fields ADD COLUMN records BIGINT NOT NULL DEFAULT 0"))
    if "stale" not in columns:
        conn.execute(text(f"ALTER TABLE fields ADD COLUMN stale BOOLEAN NOT NULL DEFAULT {false}"))
    if conn.dialect.name == "postgresql":
        # SQLite's INTEGER is already 64-bit; PostgreSQL's overflows at 2**31.
        for table, column in _COUNTERS:
            conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE BIGINT"))


_COUNTERS = [
    ("datasets", "record_count"),
    ("datasets", "bytes"),
    ("normalization_rules", "rows_affected"),
    ("value_rules", "rows_affected"),
    *(("loss_accounting", c) for c in ("received", "written", "flagged", "duplicates", "gaps")),
]


def _stream_computations(conn: Connection) -> None:
    t.stream_computations.create(conn, checkfirst=True)


def _distinct_sensors(conn: Connection) -> None:
    columns = {c["name"] for c in inspect(conn).get_columns(t.datasets.name)}
    blob = "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"
    if "sensor_sketch" not in columns:
        conn.execute(text(f"ALTER TABLE datasets ADD COLUMN sensor_sketch {blob}"))
    if "distinct_sensors" not in columns:
        conn.execute(
            text("ALTER TABLE datasets ADD COLUMN distinct_sensors BIGINT NOT NULL DEFAULT 0")
        )


def _users_and_tokens(conn: Connection) -> None:
    for table in (t.users, t.api_tokens):
        table.create(conn, checkfirst=True)


def _audit_and_computation_labels(conn: Connection) -> None:
    t.audit_log.create(conn, checkfirst=True)
    columns = {c["name"] for c in inspect(conn).get_columns(t.computations.name)}
    false = "FALSE" if conn.dialect.name == "postgresql" else "0"
    added = {
        "parameters": "JSON",
        "sensitivity": "VARCHAR(20)",
        "declassified": f"BOOLEAN NOT NULL DEFAULT {false}",
        "owner": "VARCHAR(64)",
    }
    for name, kind in added.items():
        if name not in columns:
            conn.execute(text(f"ALTER TABLE computations ADD COLUMN {name} {kind}"))


def _dashboards_and_examples(conn: Connection) -> None:
    for table in (t.dashboards, t.tiles):
        table.create(conn, checkfirst=True)
    now = utcnow()
    taken = set(conn.execute(select(t.computations.c.name)).scalars())
    for name, fields in EXAMPLE_COMPUTATIONS.items():
        if name not in taken:
            conn.execute(
                insert(t.computations).values(
                    name=name,
                    declassified=False,
                    **{"parameters": [], **fields},
                    created_at=now,
                    updated_at=now,
                )
            )
    board = DEMO_DASHBOARD
    boards = set(conn.execute(select(t.dashboards.c.name)).scalars())
    if board["name"] in boards:
        return
    conn.execute(
        insert(t.dashboards).values(
            name=board["name"],
            title=board["title"],
            description=board["description"],
            created_at=now,
            updated_at=now,
        )
    )
    for title, computation, viz, config, x, y, w, h in board["tiles"]:
        conn.execute(
            insert(t.tiles).values(
                dashboard=board["name"],
                title=title,
                computation=computation,
                viz=viz,
                config=config,
                parameters={},
                x=x,
                y=y,
                w=w,
                h=h,
                created_at=now,
                updated_at=now,
            )
        )


def _alert_states(conn: Connection) -> None:
    t.alert_states.create(conn, checkfirst=True)


class Migration(NamedTuple):
    version: int
    name: str
    apply: Callable[[Connection], None]


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "seed default rules and computations", _seed_defaults),
    Migration(3, "loss accounting per dataset", _loss_accounting),
    Migration(4, "devices, value rules, alert rules", _devices_and_rules),
    Migration(5, "schema evolution log, field counts, 64-bit counters", _schema_evolution),
    Migration(6, "user-defined stream computations", _stream_computations),
    Migration(7, "distinct sensors per dataset (sketch and estimate)", _distinct_sensors),
    Migration(8, "users and API tokens", _users_and_tokens),
    Migration(
        9, "audit log; computation parameters, labels, owners", _audit_and_computation_labels
    ),
    Migration(10, "dashboards and tiles; example computations", _dashboards_and_examples),
    Migration(11, "alert states and acknowledgements", _alert_states),
]


def migrate(engine: Engine) -> int:
    """Apply every pending migration; returns the catalog's schema version afterwards.

    Safe when several processes start at once: the whole run holds the database's write lock
    (SQLite transactions begin IMMEDIATE, see ``store.create_catalog_engine``; PostgreSQL takes an
    advisory lock), and the applied versions are read under it. Migrations apply by number, and
    each pending one whatever newer ones are applied already, so the order in which they landed
    in :data:`MIGRATIONS` does not matter.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7312026)"))
        if not inspect(conn).has_table(t.schema_migrations.name):
            t.schema_migrations.create(conn)
        done = set(conn.execute(select(t.schema_migrations.c.version)).scalars())
        for migration in sorted(MIGRATIONS, key=lambda m: m.version):
            if migration.version in done:
                continue
            migration.apply(conn)
            conn.execute(
                insert(t.schema_migrations).values(
                    version=migration.version, name=migration.name, applied_at=utcnow()
                )
            )
            log.info("catalog migrated version=%s name=%r", migration.version, migration.name)
    return max(m.version for m in MIGRATIONS)
