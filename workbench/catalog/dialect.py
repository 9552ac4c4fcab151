"""What differs between the catalog's two databases (SQLite and PostgreSQL), in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from workbench.core.errors import ConfigError


def upsert(conn: Connection, table: Table) -> Any:
    """An ``INSERT`` for ``table`` that supports ``on_conflict_do_update/do_nothing``.

    Both dialects spell it ``INSERT ... ON CONFLICT``, which makes an upsert one atomic
    statement: a select-then-insert races under PostgreSQL's READ COMMITTED when two processes
    (ingest and engine) write the same key.

    Raises:
        ConfigError: for a database other than SQLite or PostgreSQL.
    """
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise ConfigError(
        f"catalog database {name!r} is not supported; use sqlite:/// or postgresql+psycopg://"
    )


@overload
def stored_utc(value: datetime) -> datetime: ...
@overload
def stored_utc(value: None) -> None: ...
def stored_utc(value: datetime | None) -> datetime | None:
    """A timestamp read back from the catalog, UTC-aware on both databases.

    SQLite hands back naive datetimes even for timezone-aware columns; everything the catalog
    stores is UTC, so a naive value is UTC.
    """
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
