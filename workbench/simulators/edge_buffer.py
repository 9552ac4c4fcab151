"""The edge buffer: a bounded on-disk queue of messages waiting for the broker's PUBACK.

Every simulated message goes through it (one SQLite file per simulator under
``<home>/edge/<kind>/``), so nothing depends on the broker being reachable: messages are
appended, handed to the MQTT client in id order, and deleted only once the broker acknowledged
them. A restarted simulator finds the unacknowledged ones and sends them first.

When the buffer holds ``max_messages``, the ``drop`` policy decides what goes: ``"oldest"``
(default: live dashboards care about the present, so old readings make room for new ones) or
``"newest"`` (keep the history, refuse new readings). Messages already handed to the client are
never dropped, so the buffer may exceed its bound by at most the in-flight window. Every drop is
logged and counted; the total survives restarts (:meth:`EdgeBuffer.stats`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from workbench.core.errors import ConfigError
from workbench.core.settings import Settings
from workbench.simulators.sequence import (
    ensure_sequence_table,
    read_sequence_numbers,
    reserve_sequence_number,
)

log = logging.getLogger(__name__)

DropPolicy = Literal["oldest", "newest"]


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to queue: ``payload`` is serialized to compact JSON when queued.

    Attributes:
        sensor_id: whose sequence number to use when numbering is on.
        topic: the MQTT topic.
        payload: the reading.
    """

    sensor_id: str
    topic: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class BufferedMessage:
    """A queued message: ``id`` orders the queue and never repeats."""

    id: int
    topic: str
    payload: bytes


@dataclass(frozen=True)
class EdgeBufferStats:
    """What the buffer holds and what it had to drop since it was created."""

    pending: int
    dropped_total: int
    sequences: dict[str, int]


class EdgeBuffer:
    """A bounded, ordered, persistent outbox (thread-safe: the MQTT callback thread acks).

    Args:
        directory: where the SQLite file and the lock live (created if missing).
        max_messages: the bound (at least 1).
        drop: which messages to drop when full.
        lock: hold an exclusive lock so two simulators never drain the same buffer.

    Raises:
        ConfigError: another process holds the buffer.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_messages: int = 100_000,
        drop: DropPolicy = "oldest",
        lock: bool = True,
    ) -> None:
        if max_messages < 1:
            raise ConfigError("the edge buffer must hold at least one message")
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "outbox.sqlite"
        self.max_messages = max_messages
        self.drop = drop
        self._lock_file = None
        if lock:
            self._lock_file = open(directory / "lock", "w")  # noqa: SIM115 (held until close)
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as err:
                self._lock_file.close()
                raise ConfigError(
                    f"another simulator is using the edge buffer in {directory}",
                    path=str(directory),
                ) from err
        self._mutex = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a crash of the process (not of the machine) and keeps appends fast.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, payload BLOB NOT NULL)"
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        ensure_sequence_table(self._conn)
        self._pending = int(self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        self._handed_through = 0

    def append(self, messages: Sequence[OutgoingMessage], *, number: bool = False) -> int:
        """Queue ``messages`` in order; returns how many messages were dropped to stay bounded.

        Args:
            messages: the messages, oldest first.
            number: add a per-sensor ``seq`` (1, 2, ...) to each payload, persisted.
        """
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rows = []
                for message in messages:
                    payload = message.payload
                    if number:
                        seq = reserve_sequence_number(self._conn, message.sensor_id)
                        payload = {**payload, "seq": seq}
                    rows.append((message.topic, json.dumps(payload, separators=(",", ":"))))
                rows, dropped = self._fit(rows)
                self._conn.executemany(
                    "INSERT INTO outbox (topic, payload) VALUES (?, ?)",
                    [(t, p.encode()) for t, p in rows],
                )
                if dropped:
                    self._conn.execute(
                        "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                        (dropped,),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._pending += len(rows)
        if dropped:
            log.warning(
                "edge buffer full, dropped=%s policy=%s max_messages=%s path=%s",
                dropped,
                self.drop,
                self.max_messages,
                self.path,
            )
        return dropped

    def _fit(self, rows: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
        """Apply the drop policy before inserting ``rows``; returns the rows kept and drops."""
        if self.drop == "newest":
            room = max(0, self.max_messages - self._pending)
            return rows[:room], len(rows) - min(room, len(rows))
        dropped = 0
        if len(rows) > self.max_messages:
            dropped = len(rows) - self.max_messages
            rows = rows[dropped:]
        excess = self._pending + len(rows) - self.max_messages
        if excess > 0:
            cursor = self._conn.execute(
                "DELETE FROM outbox WHERE id IN "
                "(SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT ?)",
                (self._handed_through, excess),
            )
            self._pending -= cursor.rowcount
            dropped += cursor.rowcount
        return rows, dropped

    def take(self, limit: int) -> list[BufferedMessage]:
        """The next ``limit`` messages not taken yet, oldest first (queued until acked)."""
        if limit <= 0:
            return []
        with self._mutex:
            rows = self._conn.execute(
                "SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (self._handed_through, limit),
            ).fetchall()
            if rows:
                self._handed_through = int(rows[-1][0])
        return [BufferedMessage(int(i), str(t), bytes(p)) for i, t, p in rows]

    def ack(self, ids: Sequence[int]) -> None:
        """Delete messages the broker acknowledged."""
        with self._mutex:
            cursor = self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._pending -= cursor.rowcount

    @property
    def pending(self) -> int:
        """Messages queued and not yet acknowledged (in flight included)."""
        return self._pending

    def stats(self) -> EdgeBufferStats:
        """Pending messages, the total dropped since creation and the last sequence numbers."""
        with self._mutex:
            row = self._conn.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
            sequences = read_sequence_numbers(self._conn)
        return EdgeBufferStats(self._pending, int(row[0]) if row else 0, sequences)

    def close(self) -> None:
        """Close the database and release the lock."""
        with self._mutex:
            self._conn.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def edge_directory(settings: Settings, kind: str) -> Path:
    """Where the edge buffer of simulator ``kind`` lives."""
    return Path(settings.home) / "edge" / kind.replace("_", "-")


def open_edge_buffer(settings: Settings, kind: str, *, lock: bool = True) -> EdgeBuffer:
    """The edge buffer of simulator ``kind`` (``lock=False`` to inspect a running one)."""
    sim = settings.simulator
    return EdgeBuffer(
        edge_directory(settings, kind),
        max_messages=sim.edge_buffer_max_messages,
        drop=sim.edge_buffer_drop,
        lock=lock,
    )
