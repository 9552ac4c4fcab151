"""The audit log: who read confidential or restricted results, when, and what.

A mixin of :class:`workbench.catalog.store.Catalog`; it needs only ``self.engine``. Rows are
only ever added; admins read them (``GET /api/audit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select

from workbench.catalog import tables as t
from workbench.catalog.dialect import stored_utc
from workbench.core.clock import utcnow


@dataclass(frozen=True)
class AuditEntry:
    """One audited read."""

    id: int
    at: datetime
    user: str
    role: str
    sensitivity: str
    computation: str | None
    sql: str
    tables: list[str]
    devices: list[str]
    rows: int


class AuditTables:
    """The audit log over the catalog database."""

    engine: Engine

    def audit_read(
        self,
        *,
        user: str,
        role: str,
        sensitivity: str,
        sql: str,
        computation: str | None,
        tables: list[str],
        devices: list[str],
        rows: int,
    ) -> None:
        """Record one read of a result labelled ``sensitivity``."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.audit_log).values(
                    at=utcnow(),
                    user=user,
                    role=role,
                    sensitivity=sensitivity,
                    computation=computation,
                    sql=sql,
                    tables=tables,
                    devices=devices,
                    rows=rows,
                )
            )

    def audit_entries(
        self, *, user: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """Audited reads, newest first (of one user, since a time, at most ``limit``)."""
        query = select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
        if user is not None:
            query = query.where(t.audit_log.c.user == user)
        if since is not None:
            query = query.where(t.audit_log.c.at >= since)
        with self.engine.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AuditEntry(
                id=r["id"],
                at=stored_utc(r["at"]) or r["at"],
                user=r["user"],
                role=r["role"],
                sensitivity=r["sensitivity"],
                computation=r["computation"],
                sql=r["sql"],
                tables=list(r["tables"] or []),
                devices=list(r["devices"] or []),
                rows=r["rows"],
            )
            for r in rows
        ]
