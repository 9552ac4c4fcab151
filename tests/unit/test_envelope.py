import base64
import json

from workbench.connectors.envelope import build_envelopes
from workbench.connectors.rest_push import parse_push_body
from workbench.core.clock import utcnow

KW = dict(ingestion_id="ds", source_type="mqtt", topic="sensors/a", time_fields=["timestamp", "ts"])


def envelopes(body: bytes):
    return build_envelopes(body, received_at=utcnow(), **KW)


def test_object_is_kept_verbatim_with_event_time() -> None:
    body = b'{"sensor_id": "a", "big": 12345678901234567890, "v": 1.0, "ts": 1795673412253}'
    [env] = envelopes(body)
    assert env.payload == body.decode()  # no int->float casts, no reformatting
    assert env.payload_kind == "object" and env.error is None
    assert env.event_time is not None and env.event_time.year == 2026


def test_array_becomes_one_record_per_element_with_stable_ids() -> None:
    body = json.dumps([{"a": 1}, {"a": 2}, 7]).encode()
    first, again = envelopes(body), envelopes(body)
    assert [e.payload_kind for e in first] == ["object", "object", "scalar"]
    assert [e.message_id for e in first] == [e.message_id for e in again]  # redelivery-stable
    assert len({e.message_id for e in first}) == 3
    assert first[2].error


def test_bad_bodies_are_kept_with_a_reason() -> None:
    [raw] = envelopes(b"\xff\xfeabc")
    assert raw.payload_kind == "invalid_utf8"
    assert base64.b64decode(raw.payload) == b"\xff\xfeabc"
    [text] = envelopes(b"hello")
    assert text.payload_kind == "non_json" and text.payload == "hello" and "not JSON" in text.error
    [scalar] = envelopes(b"42")
    assert scalar.payload_kind == "scalar"
    [empty] = envelopes(b"[]")
    assert empty.error == "empty JSON array"


def test_unparsable_time_is_kept_raw_not_replaced() -> None:
    [env] = envelopes(b'{"timestamp": "next tuesday"}')
    assert env.event_time is None
    assert env.event_time_raw == "next tuesday"


def test_deep_nesting_does_not_crash() -> None:
    body = ("[" * 5000 + "]" * 5000).encode()
    [env] = envelopes(body)
    # Deeper than the parser goes: kept whole, raw, with the reason, like any non-JSON body.
    assert env.payload_kind == "non_json" and env.payload == body.decode()
    assert env.error is not None and env.error.startswith("not JSON")


def test_push_ndjson_gives_a_result_per_record() -> None:
    envs, results = parse_push_body(
        b'{"a":1}\n\n{"b":2}\nnot json\n',
        content_type="application/x-ndjson",
        ingestion_id="ds",
        endpoint="/api/push/x",
        received_at=utcnow(),
        time_fields=["ts"],
    )
    assert [r.status for r in results] == ["accepted", "accepted", "flagged"]
    assert len(envs) == 3 and "not JSON" in (results[2].reason or "")
