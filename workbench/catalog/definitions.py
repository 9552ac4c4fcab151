"""Devices, value rules, alert rules and stream computations: what
analysts register.

A mixin of :class:`workbench.catalog.store.Catalog`, kept in its own module so each catalog
module stays about one noun; it needs only ``self.engine``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Engine, case, delete, insert, select, update
from sqlalchemy.engine import RowMapping

from workbench.catalog import tables as t
from workbench.catalog.dialect import upsert
from workbench.catalog.records import (
    SENSITIVITIES,
    STREAM_COMPUTATION_NAME,
    UNCHANGED,
    VALUE_RULE_KINDS,
    AlertRule,
    Device,
    RuleOutcome,
    StreamComputation,
    Unchanged,
    ValueRule,
    ValueRuleStatus,
)
from workbench.core.clock import utcnow
from workbench.core.errors import ConfigError, NotFoundError

#: Alert comparison operators (see :class:`AlertRule`).
ALERT_OPS = ("gt", "ge", "lt", "le")
#: Outcomes :meth:`RegistryTables.record_value_rule_status` accepts.
RULE_STATUSES = ("ok", "failed")


class RegistryTables:
    """Devices, value rules, alert rules and stream computations over the catalog database."""

    engine: Engine

    # -- devices -----------------------------------------------------------------------------

    def list_devices(self) -> list[Device]:
        """Every registered device (exact ids and wildcards), by ``ingestion_id``."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.devices).order_by(t.devices.c.ingestion_id)).mappings()
            return [_device(row) for row in rows]

    def save_device(self, device: Device) -> None:
        """Register a device or replace its settings (keyed by ``ingestion_id`` / pattern).

        Raises:
            ConfigError: for an empty pattern, an unknown sensitivity or a retention that is
                not a positive number of days.
        """
        _check_device(device)
        now = utcnow()
        values = {
            "name": device.name,
            "sensitivity": device.sensitivity,
            "retention_days": device.retention_days,
            "enabled": device.enabled,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            stmt = upsert(conn, t.devices).values(
                ingestion_id=device.ingestion_id, created_at=now, **values
            )
            conn.execute(stmt.on_conflict_do_update(index_elements=["ingestion_id"], set_=values))

    def delete_device(self, pattern: str) -> None:
        """Unregister a device or wildcard.

        Raises:
            NotFoundError: if nothing is registered under ``pattern``.
        """
        with self.engine.begin() as conn:
            result = conn.execute(delete(t.devices).where(t.devices.c.ingestion_id == pattern))
        if result.rowcount == 0:
            raise NotFoundError(f"no device registered as {pattern!r}", ingestion_id=pattern)

    def device_for(self, ingestion_id: str) -> Device | None:
        """The registration that applies to ``ingestion_id``, enabled or not; None if none.

        An exact registration wins; otherwise the longest matching wildcard (the most specific
        one), ties broken by pattern order so the answer is stable.
        """
        return match_device(self.list_devices(), ingestion_id)

    # -- value rules -------------------------------------------------------------------------

    def list_value_rules(self, *, include_disabled: bool = False) -> list[ValueRule]:
        """Value rules, global and per dataset, in application order (priority, then id)."""
        col = t.value_rules.c
        query = select(t.value_rules).order_by(col.priority, col.id)
        if not include_disabled:
            query = query.where(col.enabled.is_(True))
        with self.engine.begin() as conn:
            return [_value_rule(row) for row in conn.execute(query).mappings()]

    def add_value_rule(
        self,
        name: str,
        kind: str,
        field: str,
        config: dict[str, Any] | None = None,
        *,
        ingestion_id: str | None = None,
        priority: int = 100,
        enabled: bool = True,
    ) -> int:
        """Add a value rule; returns its id. ``config`` is checked by the engine, not here.

        Raises:
            ConfigError: for an empty name or field, or a kind not in ``VALUE_RULE_KINDS``.
        """
        _check_value_rule(name=name, kind=kind, field=field)
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(t.value_rules).values(
                    name=name,
                    kind=kind,
                    field=field,
                    config=dict(config or {}),
                    ingestion_id=ingestion_id or "",
                    priority=priority,
                    enabled=enabled,
                    rows_affected=0,
                    created_at=utcnow(),
                )
            )
            return int(result.inserted_primary_key[0])

    def update_value_rule(
        self,
        rule_id: int,
        *,
        name: str | Unchanged = UNCHANGED,
        kind: str | Unchanged = UNCHANGED,
        field: str | Unchanged = UNCHANGED,
        config: dict[str, Any] | Unchanged = UNCHANGED,
        ingestion_id: str | None | Unchanged = UNCHANGED,
        priority: int | Unchanged = UNCHANGED,
        enabled: bool | Unchanged = UNCHANGED,
    ) -> None:
        """Change any of a value rule's attributes; those left :data:`UNCHANGED` are kept.

        ``ingestion_id=None`` makes the rule global (hence the sentinel, not None, for
        "unchanged").

        Raises:
            ConfigError: for an empty name or field, or a kind not in ``VALUE_RULE_KINDS``.
            NotFoundError: if there is no such rule.
        """
        options: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "field": field,
            "config": config,
            "ingestion_id": ingestion_id,
            "priority": priority,
            "enabled": enabled,
        }
        changes = {k: v for k, v in options.items() if v is not UNCHANGED}
        _check_value_rule(**{k: v for k, v in changes.items() if k in ("name", "kind", "field")})
        if "ingestion_id" in changes:
            changes["ingestion_id"] = changes["ingestion_id"] or ""
        if not changes:
            changes = {"id": rule_id}  # still tells a missing rule from an unchanged one
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t.value_rules).where(t.value_rules.c.id == rule_id).values(**changes)
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no value rule with id {rule_id}", rule_id=rule_id)

    def delete_value_rule(self, rule_id: int) -> None:
        """Remove a value rule (no error if it is already gone)."""
        with self.engine.begin() as conn:
            conn.execute(delete(t.value_rules).where(t.value_rules.c.id == rule_id))

    def record_value_rule_status(self, results: Mapping[int, RuleOutcome]) -> None:
        """Record one batch's outcome per rule id.

        The status and error replace the stored ones (an ``ok`` outcome clears an earlier
        error); rows are added to the running total and ``last_applied_at`` is stamped. Rules
        deleted meanwhile are ignored.

        Raises:
            ConfigError: for a status other than ``ok`` or ``failed``.
        """
        # Checked at run time too: the status may come from untyped code.
        bad = {str(o.status) for o in results.values()} - set(RULE_STATUSES)
        if bad:
            raise ConfigError(f"unknown value rule status {sorted(bad)}; use {RULE_STATUSES}")
        if not results:
            return
        now = utcnow()
        col = t.value_rules.c
        with self.engine.begin() as conn:
            for rule_id, outcome in results.items():
                conn.execute(
                    update(t.value_rules)
                    .where(col.id == rule_id)
                    .values(
                        status=outcome.status,
                        last_error=outcome.last_error,
                        rows_affected=col.rows_affected + int(outcome.rows_affected),
                        last_applied_at=now,
                    )
                )

    def value_rule_status(self) -> list[ValueRuleStatus]:
        """Every value rule, enabled or not, with its last status, error, rows affected and
        when it last ran, by id (for the rule editor and the engine's status page)."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.value_rules).order_by(t.value_rules.c.id)).mappings()
            return [
                ValueRuleStatus(
                    rule=_value_rule(row),
                    status=row["status"],
                    last_error=row["last_error"],
                    rows_affected=row["rows_affected"],
                    last_applied_at=row["last_applied_at"],
                )
                for row in rows
            ]

    # -- alert rules -------------------------------------------------------------------------

    def list_alert_rules(self, *, include_disabled: bool = False) -> list[AlertRule]:
        """Threshold alert rules, by id."""
        query = select(t.alert_rules).order_by(t.alert_rules.c.id)
        if not include_disabled:
            query = query.where(t.alert_rules.c.enabled.is_(True))
        with self.engine.begin() as conn:
            return [_alert_rule(row) for row in conn.execute(query).mappings()]

    def add_alert_rule(
        self,
        name: str,
        field: str,
        op: str,
        threshold: float,
        *,
        ingestion_id: str | None = None,
        enabled: bool = True,
    ) -> int:
        """Add a threshold alert on a canonical field; returns its id.

        Raises:
            ConfigError: for an empty name or field or an op not in ``ALERT_OPS``.
        """
        if not name.strip() or not field.strip():
            raise ConfigError("an alert rule needs a non-empty name and field")
        if op not in ALERT_OPS:
            raise ConfigError(f"unknown alert op {op!r}; use one of {', '.join(ALERT_OPS)}")
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(t.alert_rules).values(
                    name=name,
                    field=field,
                    op=op,
                    threshold=float(threshold),
                    ingestion_id=ingestion_id or "",
                    enabled=enabled,
                    created_at=utcnow(),
                )
            )
            return int(result.inserted_primary_key[0])

    def delete_alert_rule(self, rule_id: int) -> None:
        """Remove an alert rule and its alerts' states (no error if it is already gone)."""
        with self.engine.begin() as conn:
            conn.execute(delete(t.alert_states).where(t.alert_states.c.rule_id == rule_id))
            conn.execute(delete(t.alert_rules).where(t.alert_rules.c.id == rule_id))

    # -- stream computations -----------------------------------------------------------------

    def list_stream_computations(self, *, include_disabled: bool = True) -> list[StreamComputation]:
        """Stream computations, by name (``include_disabled=False``: the ones that run)."""
        col = t.stream_computations.c
        query = select(t.stream_computations).order_by(col.name)
        if not include_disabled:
            query = query.where(col.enabled.is_(True))
        with self.engine.begin() as conn:
            return [_stream_computation(row) for row in conn.execute(query).mappings()]

    def get_stream_computation(self, name: str) -> StreamComputation:
        """One stream computation.

        Raises:
            NotFoundError: naming the stream computations that do exist.
        """
        col = t.stream_computations.c
        with self.engine.begin() as conn:
            row = conn.execute(select(t.stream_computations).where(col.name == name)).mappings()
            found = row.first()
        if found is None:
            known = ", ".join(c.name for c in self.list_stream_computations()) or "none"
            raise NotFoundError(f"no stream computation named {name!r}; known: {known}", name=name)
        return _stream_computation(found)

    def save_stream_computation(self, computation: StreamComputation) -> StreamComputation:
        """Create a stream computation or replace its ``sql``, ``description`` and ``enabled``.

        One atomic upsert keyed by name; ``version`` rises by one when the stored ``sql``
        differs from the new one. The record's own ``id``, ``version`` and timestamps are
        ignored. Whether Spark can run the SQL is the engine's check, not this one.

        Returns:
            The stored record (with its ``id``, ``version`` and timestamps).

        Raises:
            ConfigError: for a name that cannot name a table or empty SQL.
        """
        _check_stream_computation(computation)
        now = utcnow()
        table = t.stream_computations
        with self.engine.begin() as conn:
            stmt = upsert(conn, table).values(
                name=computation.name,
                sql=computation.sql,
                description=computation.description,
                enabled=computation.enabled,
                version=1,
                created_at=now,
                updated_at=now,
            )
            new = stmt.excluded
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={
                        "sql": new.sql,
                        "description": new.description,
                        "enabled": new.enabled,
                        "updated_at": new.updated_at,
                        "version": case(
                            (table.c.sql != new.sql, table.c.version + 1), else_=table.c.version
                        ),
                    },
                )
            )
            row = conn.execute(select(table).where(table.c.name == computation.name)).mappings()
            return _stream_computation(row.one())

    def delete_stream_computation(self, name: str) -> None:
        """Remove a stream computation (its gold table is the engine's to drop).

        Raises:
            NotFoundError: if there is no stream computation of that name.
        """
        col = t.stream_computations.c
        with self.engine.begin() as conn:
            result = conn.execute(delete(t.stream_computations).where(col.name == name))
        if result.rowcount == 0:
            raise NotFoundError(f"no stream computation named {name!r}", name=name)


def match_device(devices: list[Device], ingestion_id: str) -> Device | None:
    """The device among ``devices`` that applies to ``ingestion_id`` (see ``device_for``).

    Pure, so the engine can match a whole batch against one ``list_devices()`` read.
    """
    best: Device | None = None
    for device in devices:
        if device.ingestion_id == ingestion_id:
            return device
        if fnmatchcase(ingestion_id, device.ingestion_id) and (
            best is None or len(device.ingestion_id) > len(best.ingestion_id)
        ):
            best = device
    return best


def _check_device(device: Device) -> None:
    if not device.ingestion_id.strip():
        raise ConfigError("a device needs an ingestion_id or a wildcard pattern")
    if device.sensitivity not in SENSITIVITIES:
        raise ConfigError(
            f"unknown sensitivity {device.sensitivity!r} for device {device.ingestion_id!r}; "
            f"use one of {', '.join(SENSITIVITIES)}",
            ingestion_id=device.ingestion_id,
        )
    if device.retention_days is not None and device.retention_days <= 0:
        raise ConfigError(
            f"retention_days must be a positive number of days or None, "
            f"not {device.retention_days!r}",
            ingestion_id=device.ingestion_id,
        )


def _check_value_rule(**values: Any) -> None:
    for key in ("name", "field"):
        if key in values and not str(values[key]).strip():
            raise ConfigError(f"a value rule needs a non-empty {key}")
    if "kind" in values and values["kind"] not in VALUE_RULE_KINDS:
        raise ConfigError(
            f"unknown value rule kind {values['kind']!r}; use one of {', '.join(VALUE_RULE_KINDS)}"
        )


def _check_stream_computation(computation: StreamComputation) -> None:
    if not re.fullmatch(STREAM_COMPUTATION_NAME, computation.name):
        raise ConfigError(
            f"stream computation name {computation.name!r} cannot name the table "
            f"gold.<name>: use a letter or '_' then up to 63 letters, digits or '_'",
            name=computation.name,
        )
    if not computation.sql.strip():
        raise ConfigError(
            f"stream computation {computation.name!r} has no SQL: write one SELECT over silver",
            name=computation.name,
        )


def _device(row: RowMapping) -> Device:
    return Device(
        ingestion_id=row["ingestion_id"],
        name=row["name"],
        sensitivity=row["sensitivity"],
        retention_days=row["retention_days"],
        enabled=row["enabled"],
    )


def _value_rule(row: RowMapping) -> ValueRule:
    return ValueRule(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        field=row["field"],
        config=dict(row["config"] or {}),
        ingestion_id=row["ingestion_id"] or None,
        priority=row["priority"],
        enabled=row["enabled"],
    )


def _alert_rule(row: RowMapping) -> AlertRule:
    return AlertRule(
        id=row["id"],
        name=row["name"],
        field=row["field"],
        op=row["op"],
        threshold=row["threshold"],
        ingestion_id=row["ingestion_id"] or None,
        enabled=row["enabled"],
    )


def _stream_computation(row: RowMapping) -> StreamComputation:
    return StreamComputation(
        id=row["id"],
        name=row["name"],
        sql=row["sql"],
        description=row["description"],
        enabled=row["enabled"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
