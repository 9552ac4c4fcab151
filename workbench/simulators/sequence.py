"""Per-sensor sequence numbers, persisted next to the edge buffer.

Numbers are reserved in the same SQLite transaction that queues the message, so a restart
continues the sequence and a number is never handed out twice. A message the edge buffer later
drops keeps its number: the gap it leaves is exactly what loss accounting should detect.
"""

from __future__ import annotations

import sqlite3


def ensure_sequence_table(conn: sqlite3.Connection) -> None:
    """Create the table of last used numbers if missing."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS sequences (sensor_id TEXT PRIMARY KEY, last INTEGER NOT NULL)"
    )


def reserve_sequence_number(conn: sqlite3.Connection, sensor_id: str) -> int:
    """The next number of ``sensor_id`` (1 for a new sensor); call inside a transaction."""
    row = conn.execute(
        "INSERT INTO sequences (sensor_id, last) VALUES (?, 1) "
        "ON CONFLICT (sensor_id) DO UPDATE SET last = last + 1 RETURNING last",
        (sensor_id,),
    ).fetchone()
    return int(row[0])


def read_sequence_numbers(conn: sqlite3.Connection) -> dict[str, int]:
    """The last number handed out per sensor."""
    return {str(s): int(n) for s, n in conn.execute("SELECT sensor_id, last FROM sequences")}
