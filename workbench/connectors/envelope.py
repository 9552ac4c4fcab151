"""The envelope: the one record shape every connector emits (SPEC F4).

A message body becomes one or more envelopes. JSON objects are kept verbatim; arrays become one
envelope per element; scalars, non-JSON and invalid UTF-8 become flagged raw envelopes with a
reason. Nothing is dropped: every body yields at least one envelope.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workbench.connectors.event_time import find_time_value, parse_event_time

OBJECT = "object"
SCALAR = "scalar"
NON_JSON = "non_json"
INVALID_UTF8 = "invalid_utf8"


@dataclass(slots=True)
class Envelope:
    """One record on its way to bronze."""

    message_id: str
    """Stable identity: the same message redelivered gets the same id (array elements ``:i``)."""
    ingestion_id: str
    source_type: str
    topic: str
    received_at: datetime
    event_time: datetime | None
    event_time_raw: str | None
    """The payload's time value as text when it could not be parsed (kept, never replaced)."""
    payload: str
    """The record verbatim: JSON text, raw text, or base64 for invalid UTF-8."""
    payload_kind: str
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] | None = None
    """The parsed object (for metadata extraction); not written to bronze."""

    @property
    def size(self) -> int:
        """Bytes of payload text, for buffer accounting."""
        return len(self.payload)


def message_identity(topic: str, body: bytes) -> str:
    """A content identity for a message without one: redeliveries map to the same id."""
    digest = hashlib.blake2b(topic.encode("utf-8", "surrogateescape"), digest_size=16)
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


def build_envelopes(
    body: bytes,
    *,
    ingestion_id: str,
    source_type: str,
    topic: str,
    received_at: datetime,
    time_fields: list[str],
    message_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> list[Envelope]:
    """Turn one message body into envelopes (at least one)."""
    mid = message_id or message_identity(topic, body)
    meta = meta or {}

    def envelope(
        payload: str,
        kind: str,
        *,
        suffix: str = "",
        error: str | None = None,
        record: dict[str, Any] | None = None,
    ) -> Envelope:
        event_time, raw_time = None, None
        if record is not None:
            value = find_time_value(record, time_fields)
            if value is not None:
                event_time = parse_event_time(value)
                if event_time is None:
                    raw_time = value if isinstance(value, str) else json.dumps(value)
        return Envelope(
            message_id=mid + suffix,
            ingestion_id=ingestion_id,
            source_type=source_type,
            topic=topic,
            received_at=received_at,
            event_time=event_time,
            event_time_raw=raw_time,
            payload=payload,
            payload_kind=kind,
            error=error,
            meta=meta,
            record=record,
        )

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        return [
            envelope(
                base64.b64encode(body).decode("ascii"),
                INVALID_UTF8,
                error=f"invalid UTF-8 at byte {err.start}; payload kept as base64",
            )
        ]
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as err:
        return [envelope(text, NON_JSON, error=f"not JSON: {err}"[:500])]
    if isinstance(parsed, dict):
        return [envelope(text, OBJECT, record=parsed)]
    if isinstance(parsed, list):
        if not parsed:
            return [envelope(text, SCALAR, error="empty JSON array")]
        out = []
        for index, item in enumerate(parsed):
            item_text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            if isinstance(item, dict):
                out.append(envelope(item_text, OBJECT, suffix=f":{index}", record=item))
            else:
                out.append(
                    envelope(
                        item_text,
                        SCALAR,
                        suffix=f":{index}",
                        error="array element is not a JSON object",
                    )
                )
        return out
    return [envelope(text, SCALAR, error="JSON scalar, not an object")]
