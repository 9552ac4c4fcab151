"""REST push: a request body as envelopes, with a result per record.

Accepted bodies: one JSON object, a JSON array (one record per element), or NDJSON (one record
per non-empty line, chosen by a ``application/x-ndjson`` or ``application/jsonl`` content type).
Anything else is still accepted as a flagged raw record, so the sender learns what happened and
nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.connectors.envelope import (
    OBJECT,
    Envelope,
    build_envelopes,
    fast_json_safe,
    loads_object,
    message_identity,
    object_envelope,
)
from workbench.connectors.registry import ConnectorType, SourceContext

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")


@dataclass(slots=True)
class RecordResult:
    """What happened to one record of a pushed body.

    Not frozen: a push builds one per record, and a frozen dataclass costs ~3x more to build.
    """

    index: int
    message_id: str
    status: str
    """``accepted`` (an object) or ``flagged`` (kept raw, see ``reason``)."""
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record's entry in the push answer (``reason`` only when flagged)."""
        out: dict[str, Any] = {
            "index": self.index,
            "message_id": self.message_id,
            "status": self.status,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def parse_push_body(
    body: bytes,
    *,
    content_type: str,
    ingestion_id: str,
    endpoint: str,
    received_at: datetime,
    time_fields: list[str],
) -> tuple[list[Envelope], list[RecordResult]]:
    """Envelopes for a pushed body and the per-record results to send back."""

    def envelopes_of(part: bytes, message_id: str | None = None) -> list[Envelope]:
        return build_envelopes(
            part,
            ingestion_id=ingestion_id,
            source_type="rest_push",
            topic=endpoint,
            received_at=received_at,
            time_fields=time_fields,
            message_id=message_id,
        )

    if content_type.split(";")[0].strip().lower() in NDJSON_TYPES:
        envelopes = _ndjson_envelopes(
            body,
            ingestion_id=ingestion_id,
            endpoint=endpoint,
            received_at=received_at,
            time_fields=time_fields,
            fallback=envelopes_of,
        )
    else:
        envelopes = envelopes_of(body)
    results = [
        RecordResult(
            i, env.message_id, "accepted" if env.payload_kind == OBJECT else "flagged", env.error
        )
        for i, env in enumerate(envelopes)
    ]
    return envelopes, results


def _ndjson_envelopes(
    body: bytes,
    *,
    ingestion_id: str,
    endpoint: str,
    received_at: datetime,
    time_fields: list[str],
    fallback: Any,
) -> list[Envelope]:
    """One envelope per non-empty line; record ``n`` of the body is ``<body id>:<line n>``.

    A line that is one JSON object (nearly all of them) is decoded once with orjson and kept
    verbatim as its payload; any other line takes the general path (``fallback``), which
    handles arrays, scalars, non-JSON and invalid UTF-8 exactly like a single-message body.
    """
    base = message_identity(endpoint, body)
    fast = fast_json_safe(body)  # one scan of the body instead of one per line
    times: dict[str, datetime | None] = {}
    meta: dict[str, Any] = {}
    envelopes: list[Envelope] = []
    for number, line in enumerate(body.split(b"\n")):
        if not line or line.isspace():
            continue
        message_id = f"{base}:{number}"
        record = loads_object(line, fast)
        if record is None:
            envelopes += fallback(line, message_id)
            continue
        envelopes.append(
            object_envelope(
                line,
                record,
                message_id=message_id,
                ingestion_id=ingestion_id,
                source_type="rest_push",
                topic=endpoint,
                received_at=received_at,
                time_fields=time_fields,
                meta=meta,
                times=times,
            )
        )
    return envelopes


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "token": {
            "type": "string",
            "minLength": 16,
            "writeOnly": True,
            "format": "password",
            "description": "bearer token senders must present (omit only in demo mode)",
        },
        "max_body_bytes": {"type": "integer", "minimum": 1},
    },
}


def _passive(name: str, ingestion_id: str, config: dict[str, Any], context: SourceContext) -> None:
    """REST push sources are served by the ingest HTTP API; nothing runs on its own."""
    return None


CONNECTOR_TYPE = ConnectorType(
    name="rest_push",
    config_schema=CONFIG_SCHEMA,
    factory=_passive,
    description="Accept JSON, arrays or NDJSON at POST /api/push/<source>.",
)
