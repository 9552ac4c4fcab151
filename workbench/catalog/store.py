"""The catalog: one object over the catalog database, used by every service and client."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from workbench.catalog import tables as t
from workbench.catalog.alert_states import AlertStateTables
from workbench.catalog.audit import AuditTables
from workbench.catalog.dashboards import DashboardTables
from workbench.catalog.definitions import RegistryTables
from workbench.catalog.dialect import upsert
from workbench.catalog.metadata import MetadataTables
from workbench.catalog.migrations import migrate
from workbench.catalog.records import (
    UNCHANGED,
    Computation,
    LossRow,
    NormalizationRule,
    Parameter,
    RuleUsage,
    Unchanged,
)
from workbench.catalog.unmapped import UnmappedKey, find_unmapped
from workbench.catalog.users import UserTables
from workbench.core.clock import utcnow
from workbench.core.errors import CatalogError, NotFoundError
from workbench.core.ids import ingestion_id as make_ingestion_id

if TYPE_CHECKING:
    from workbench.ingest.loss import LossCounts

log = logging.getLogger(__name__)

BATCH_KEY_RETENTION = timedelta(days=1)
"""How long a micro-batch's usage key is kept to recognise its replay."""


def create_catalog_engine(url: str) -> Engine:
    """An engine for the catalog URL; SQLite gets WAL, a busy timeout and IMMEDIATE transactions.

    IMMEDIATE transactions take SQLite's write lock at BEGIN, so read-then-write sequences in
    concurrent processes (ingest and engine share the file) serialize instead of failing with
    "database is locked" half way through.
    """
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _enable_wal(cursor: Any, attempts: int = 100) -> None:
    """Switch the database to WAL (persistent, so this is a no-op once any process did it).

    The switch needs an exclusive lock and SQLite answers "database is locked" at once, without
    its busy handler, when another connection is opening the new file at the same moment.
    """
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


class Catalog(
    MetadataTables, RegistryTables, UserTables, AuditTables, DashboardTables, AlertStateTables
):
    """Sources, normalization rules and computations; datasets, schemas and their evolution
    (:class:`MetadataTables`); devices, value rules and alert rules (:class:`RegistryTables`);
    users, the audit log, dashboards and alert states (the other mixins).

    Args:
        url: SQLAlchemy URL of the catalog database (``settings.catalog.url``).
        migrate_schema: apply pending migrations on open (services and clients do; tests of
            migrations themselves pass False).
    """

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = url
        self.engine = create_catalog_engine(url)
        if migrate_schema:
            self.schema_version = migrate(self.engine)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # -- sources ---------------------------------------------------------------------------

    def save_source(self, name: str, source_type: str, config: dict[str, Any]) -> str:
        """Create or replace a source; returns its deterministic ``ingestion_id``."""
        iid = make_ingestion_id(name, source_type)
        now = utcnow()
        values = {"type": source_type, "ingestion_id": iid, "config": config, "updated_at": now}
        with self.engine.begin() as conn:
            stmt = upsert(conn, t.sources).values(name=name, enabled=True, created_at=now, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))
        return iid

    def delete_source(self, name: str) -> None:
        """Remove a source (its bronze data stays)."""
        with self.engine.begin() as conn:
            conn.execute(delete(t.sources).where(t.sources.c.name == name))

    def set_source_enabled(self, name: str, enabled: bool) -> None:
        """Mark a source started or stopped; a stopped source stays stopped across restarts."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t.sources)
                .where(t.sources.c.name == name)
                .values(enabled=enabled, updated_at=utcnow())
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no source named {name!r}", source=name)

    def list_sources(self) -> list[dict[str, Any]]:
        """Every registered source with its type, ``ingestion_id``, config and state."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.sources).order_by(t.sources.c.name)).mappings().all()
        return [dict(row) for row in rows]

    # -- loss accounting ---------------------------------------------------------------------

    def add_loss_counts(self, deltas: Mapping[str, LossCounts]) -> None:
        """Add per-dataset counter deltas (received, written, flagged, duplicates, gaps)."""
        if not deltas:
            return
        col = t.loss_accounting.c
        now = utcnow()
        with self.engine.begin() as conn:
            for iid, counts in deltas.items():
                delta = counts.to_dict()
                # One atomic statement: ingest processes on several hosts share a PostgreSQL.
                stmt = upsert(conn, t.loss_accounting).values(
                    ingestion_id=iid, updated_at=now, **delta
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["ingestion_id"],
                        set_={"updated_at": now, **{k: col[k] + v for k, v in delta.items()}},
                    )
                )

    def loss_accounting(self) -> list[LossRow]:
        """Per-dataset loss counters, as stored, by ``ingestion_id``."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(t.loss_accounting).order_by(t.loss_accounting.c.ingestion_id)
            )
            return [LossRow(**row) for row in rows.mappings()]

    # -- normalization rules ----------------------------------------------------------------

    def list_rules(self, *, include_disabled: bool = False) -> list[NormalizationRule]:
        """Normalization rules, global and per source, by priority then id."""
        query = select(t.normalization_rules).order_by(
            t.normalization_rules.c.priority, t.normalization_rules.c.id
        )
        if not include_disabled:
            query = query.where(t.normalization_rules.c.enabled.is_(True))
        with self.engine.begin() as conn:
            return [_rule(row) for row in conn.execute(query).mappings()]

    def add_rule(
        self,
        raw_key: str,
        canonical_key: str,
        *,
        ingestion_id: str | None = None,
        priority: int = 100,
    ) -> NormalizationRule:
        """Map ``raw_key`` to ``canonical_key`` globally or for one dataset.

        Raises:
            CatalogError: if the same raw key already has a rule in that scope.
        """
        if not raw_key.strip() or not canonical_key.strip():
            raise CatalogError("a rule needs a non-empty raw key and canonical key")
        scope = ingestion_id or ""
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    insert(t.normalization_rules).values(
                        raw_key=raw_key,
                        canonical_key=canonical_key,
                        ingestion_id=scope,
                        priority=priority,
                        enabled=True,
                        rows_affected=0,
                        created_at=utcnow(),
                    )
                )
                rule_id = result.inserted_primary_key[0]
        except IntegrityError as err:
            where = f"dataset {ingestion_id!r}" if ingestion_id else "the global scope"
            raise CatalogError(
                f"raw key {raw_key!r} already has a rule in {where}; update or delete it first",
                raw_key=raw_key,
                ingestion_id=ingestion_id,
            ) from err
        return NormalizationRule(rule_id, raw_key, canonical_key, ingestion_id, priority, True)

    def update_rule(
        self,
        rule_id: int,
        *,
        canonical_key: str | Unchanged = UNCHANGED,
        priority: int | Unchanged = UNCHANGED,
        enabled: bool | Unchanged = UNCHANGED,
    ) -> None:
        """Change a rule's ``canonical_key``, ``priority`` or ``enabled`` flag.

        The raw key and scope are what identify a rule: to change them, delete it and add
        another. Options left :data:`UNCHANGED` keep their stored value.

        Raises:
            NotFoundError: if there is no such rule.
        """
        options = {"canonical_key": canonical_key, "priority": priority, "enabled": enabled}
        changes = {k: v for k, v in options.items() if v is not UNCHANGED}
        if not changes:
            changes = {"id": rule_id}  # still tells a missing rule from an unchanged one
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t.normalization_rules)
                .where(t.normalization_rules.c.id == rule_id)
                .values(**changes)
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no normalization rule with id {rule_id}", rule_id=rule_id)

    def delete_rule(self, rule_id: int) -> None:
        """Remove a rule."""
        with self.engine.begin() as conn:
            conn.execute(delete(t.normalization_rules).where(t.normalization_rules.c.id == rule_id))

    def record_rule_usage(self, usage: dict[int, int], batch_key: str | None = None) -> None:
        """Add one batch's rows affected per rule id and stamp ``last_applied``.

        Args:
            usage: rows affected per normalization rule id.
            batch_key: identifies the micro-batch (``"<query id>:<batch id>"``); a batch
                replayed after a failure is then counted once. None: always counted.
        """
        now = utcnow()
        col = t.normalization_rules.c
        with self.engine.begin() as conn:
            if batch_key is not None:
                stmt = upsert(conn, t.rule_usage_batches).values(
                    batch_key=batch_key, recorded_at=now
                )
                # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING.
                inserted = conn.execute(
                    stmt.on_conflict_do_nothing().returning(t.rule_usage_batches.c.batch_key)
                ).first()
                if inserted is None:
                    return  # a replay of a batch already counted
                conn.execute(
                    delete(t.rule_usage_batches).where(
                        t.rule_usage_batches.c.recorded_at < now - BATCH_KEY_RETENTION
                    )
                )
            for rule_id, rows in usage.items():
                if rows:
                    conn.execute(
                        update(t.normalization_rules)
                        .where(col.id == rule_id)
                        .values(rows_affected=col.rows_affected + rows, last_applied=now)
                    )

    def unmapped_keys(self) -> list[UnmappedKey]:
        """The unmapped-keys inbox: raw top-level keys no enabled normalization rule
        maps, per dataset, most frequent first, each with a suggested canonical key."""
        return find_unmapped(self.list_datasets(), self.list_rules())

    def rule_usage(self) -> list[RuleUsage]:
        """Every rule, enabled or not, with its usage counters, by id."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.normalization_rules).order_by(t.normalization_rules.c.id))
            return [
                RuleUsage(_rule(row), row["rows_affected"], row["last_applied"])
                for row in rows.mappings()
            ]

    # -- computations ------------------------------------------------------------------------

    def save_computation(self, computation: Computation) -> None:
        """Create or replace a saved computation."""
        now = utcnow()
        values = {
            "description": computation.description,
            "sql": computation.sql,
            "tile_type": computation.tile_type,
            "tile_config": computation.tile_config,
            "parameters": [p.to_dict() for p in computation.parameters],
            "sensitivity": computation.sensitivity,
            "declassified": computation.declassified,
            "owner": computation.owner,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            stmt = upsert(conn, t.computations).values(
                name=computation.name, created_at=now, **values
            )
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))

    def get_computation(self, name: str) -> Computation:
        """One saved computation.

        Raises:
            NotFoundError: naming the computations that do exist.
        """
        with self.engine.begin() as conn:
            row = (
                conn.execute(select(t.computations).where(t.computations.c.name == name))
                .mappings()
                .first()
            )
        if row is None:
            known = ", ".join(c.name for c in self.list_computations()) or "none"
            raise NotFoundError(f"no computation named {name!r}; known: {known}", name=name)
        return _computation(row)

    def delete_computation(self, name: str) -> None:
        """Delete a saved computation.

        Raises:
            NotFoundError: there is none of that name.
        """
        with self.engine.begin() as conn:
            done = conn.execute(delete(t.computations).where(t.computations.c.name == name))
        if done.rowcount == 0:
            raise NotFoundError(f"no computation named {name!r}", name=name)

    def list_computations(self) -> list[Computation]:
        """Every saved computation, by name."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.computations).order_by(t.computations.c.name)).mappings()
            return [_computation(row) for row in rows]


def _rule(row: RowMapping) -> NormalizationRule:
    return NormalizationRule(
        id=row["id"],
        raw_key=row["raw_key"],
        canonical_key=row["canonical_key"],
        ingestion_id=row["ingestion_id"] or None,
        priority=row["priority"],
        enabled=row["enabled"],
    )


def _computation(row: RowMapping) -> Computation:
    return Computation(
        name=row["name"],
        sql=row["sql"],
        description=row["description"],
        tile_type=row["tile_type"],
        tile_config=dict(row["tile_config"] or {}),
        parameters=tuple(Parameter(**p) for p in row["parameters"] or []),
        sensitivity=row["sensitivity"],
        declassified=bool(row["declassified"]),
        owner=row["owner"],
    )
