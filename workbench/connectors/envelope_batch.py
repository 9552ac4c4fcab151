"""Envelopes column by column: one dataset's rows as parallel lists.

A REST push of 1,000 records used to become 1,000 :class:`~workbench.connectors.envelope.Envelope`
objects, and every later step (bronze table, loss ledger, metadata, the answer) walked them
attribute by attribute. An :class:`EnvelopeBatch` holds the same rows as one list per column,
so each step reads the columns it needs with list operations, and the push parser fills the
columns directly. Single-message connectors (MQTT) still hand over envelopes; the bronze
writer turns a buffer of them into one batch at flush time (:meth:`EnvelopeBatch.from_envelopes`).

A batch is never changed once built: the writer, the ledger, the metadata extractor and the
HTTP answer may all read the same batch from different threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.connectors.envelope import OBJECT, Envelope


@dataclass(slots=True, eq=False)
class EnvelopeBatch:
    """The rows of one dataset, one list per envelope field (all of the same length)."""

    ingestion_id: str
    source_type: str
    """The dataset's connector type (the first row's, as the writer's metrics count it)."""
    message_ids: list[str]
    source_types: list[str]
    topics: list[str]
    received_at: list[datetime]
    event_times: list[datetime | None]
    event_times_raw: list[str | None]
    payloads: list[str]
    kinds: list[str]
    errors: list[str | None]
    metas: list[dict[str, Any]]
    records: list[dict[str, Any] | None]
    size: int
    """Payload characters of all rows (buffer accounting, the catalog's ``bytes``)."""
    flagged: int
    """Rows whose payload is not an object (kept raw with a reason)."""

    def __len__(self) -> int:
        return len(self.message_ids)

    @classmethod
    def empty(cls, ingestion_id: str, source_type: str) -> EnvelopeBatch:
        """A batch of no rows (a push body of blank lines)."""
        return cls(ingestion_id, source_type, [], [], [], [], [], [], [], [], [], [], [], 0, 0)

    @classmethod
    def from_envelopes(cls, rows: Sequence[Envelope]) -> EnvelopeBatch:
        """``rows`` (of one dataset, at least one) as columns."""
        first = rows[0]
        kinds = [r.payload_kind for r in rows]
        payloads = [r.payload for r in rows]
        return cls(
            ingestion_id=first.ingestion_id,
            source_type=first.source_type,
            message_ids=[r.message_id for r in rows],
            source_types=[r.source_type for r in rows],
            topics=[r.topic for r in rows],
            received_at=[r.received_at for r in rows],
            event_times=[r.event_time for r in rows],
            event_times_raw=[r.event_time_raw for r in rows],
            payloads=payloads,
            kinds=kinds,
            errors=[r.error for r in rows],
            metas=[r.meta for r in rows],
            records=[r.record for r in rows],
            size=sum(map(len, payloads)),
            flagged=len(kinds) - kinds.count(OBJECT),
        )

    @classmethod
    def of_datasets(cls, rows: Sequence[Envelope]) -> list[EnvelopeBatch]:
        """``rows`` as one batch per dataset, each in the rows' order."""
        if not rows:
            return []
        first = rows[0].ingestion_id
        if all(r.ingestion_id == first for r in rows):
            return [cls.from_envelopes(rows)]
        return [cls.from_envelopes(part) for part in by_dataset(rows).values()]

    @classmethod
    def concat(cls, parts: Sequence[EnvelopeBatch]) -> EnvelopeBatch:
        """The rows of ``parts`` (of one dataset, at least one) in order; one part is returned
        as it is."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]

        def joined(column: str) -> list[Any]:
            out: list[Any] = []
            for part in parts:
                out += getattr(part, column)
            return out

        return cls(
            ingestion_id=first.ingestion_id,
            source_type=first.source_type,
            message_ids=joined("message_ids"),
            source_types=joined("source_types"),
            topics=joined("topics"),
            received_at=joined("received_at"),
            event_times=joined("event_times"),
            event_times_raw=joined("event_times_raw"),
            payloads=joined("payloads"),
            kinds=joined("kinds"),
            errors=joined("errors"),
            metas=joined("metas"),
            records=joined("records"),
            size=sum(p.size for p in parts),
            flagged=sum(p.flagged for p in parts),
        )

    def envelopes(self) -> list[Envelope]:
        """The rows as envelopes (for callers that want objects; the hot path never does)."""
        return [
            Envelope(*fields)
            for fields in zip(
                self.message_ids,
                [self.ingestion_id] * len(self),
                self.source_types,
                self.topics,
                self.received_at,
                self.event_times,
                self.event_times_raw,
                self.payloads,
                self.kinds,
                self.errors,
                self.metas,
                self.records,
                strict=True,
            )
        ]


def by_dataset(rows: Iterable[Envelope]) -> dict[str, list[Envelope]]:
    """``rows`` grouped by ``ingestion_id``, each group in the rows' order."""
    groups: dict[str, list[Envelope]] = {}
    for row in rows:
        groups.setdefault(row.ingestion_id, []).append(row)
    return groups


def batches_of(parts: Iterable[EnvelopeBatch | list[Envelope]]) -> list[EnvelopeBatch]:
    """Buffered parts (batches, or lists of envelopes of one dataset) as batches."""
    return [p if isinstance(p, EnvelopeBatch) else EnvelopeBatch.from_envelopes(p) for p in parts]
