"""The fast paths of the ingest hot loop keep the semantics of the plain ones."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from workbench.connectors.envelope import Envelope, build_envelopes, fast_json_safe
from workbench.connectors.rest_push import parse_push_body
from workbench.core.clock import utcnow
from workbench.ingest.bronze_writer import timestamp_array
from workbench.ingest.service import observe_many

LINES = [
    b'{"sensor_id":"a","seq":1,"timestamp":"2026-11-26T10:00:00Z","v":1.5}',
    b"",
    b'{"sensor_id":"a","big":123456789012345678901234,"neg":-9223372036854775809}',
    b'{"v": NaN, "ts": 1795673412253}\r',
    b'[{"a":1},2]',
    b"not json",
    b"\xff\xfe",
    b"   ",
    b'{"timestamp":"next tuesday"}',
    b"42",
]


def push(body: bytes):
    return parse_push_body(
        body,
        content_type="application/x-ndjson",
        ingestion_id="ds",
        endpoint="/api/push/x",
        received_at=utcnow(),
        time_fields=["timestamp", "ts"],
    )


def test_ndjson_lines_parse_like_the_standard_library() -> None:
    envs, results = push(b"\n".join(LINES))
    assert [e.payload_kind for e in envs] == [
        "object",
        "object",
        "object",
        "object",
        "scalar",
        "non_json",
        "invalid_utf8",
        "object",
        "scalar",
    ]
    assert [r.status for r in results] == ["accepted"] * 4 + ["flagged"] * 3 + [
        "accepted",
        "flagged",
    ]
    assert [r.index for r in results] == list(range(9))
    # Integers beyond 64 bits stay exact integers (orjson would make them floats).
    assert envs[1].record == json.loads(LINES[2])
    assert isinstance(envs[1].record["big"], int) and isinstance(envs[1].record["neg"], int)
    # NaN is accepted like json.loads does; the payload is the line verbatim.
    assert envs[2].payload == LINES[3].decode() and envs[2].event_time is not None
    assert envs[0].record == json.loads(LINES[0]) and envs[0].payload == LINES[0].decode()
    assert envs[0].event_time is not None and envs[0].event_time.hour == 10
    assert envs[7].event_time is None and envs[7].event_time_raw == "next tuesday"
    # Record ids are "<body id>:<line number>" (array elements add ":<i>"), stable on redelivery.
    again, _ = push(b"\n".join(LINES))
    assert [e.message_id for e in envs] == [e.message_id for e in again]
    assert [e.message_id.split(":", 1)[1] for e in envs] == [
        "0", "2", "3", "4:0", "4:1", "5", "6", "8", "9"
    ]  # fmt: skip


def test_single_bodies_keep_exact_integers_and_nan() -> None:
    def one(body: bytes) -> Envelope:
        [env] = build_envelopes(
            body,
            ingestion_id="ds",
            source_type="mqtt",
            topic="t",
            received_at=utcnow(),
            time_fields=["ts"],
        )
        return env

    big = one(b'{"n": 18446744073709551616}')
    assert big.record == {"n": 18446744073709551616}
    nan = one(b'{"n": NaN}')
    assert nan.payload_kind == "object" and nan.record is not None


def test_observe_many_equals_observing_one_by_one() -> None:
    counts = {0.0: 3, 0.01: 2, 0.011: 1, 7.5: 2, 1e9: 4}
    exports = []
    for batched in (False, True):
        registry = CollectorRegistry()
        hist = Histogram("d", "delay", ["pod"], buckets=(0.01, 1, 10), registry=registry)
        child = hist.labels("p")
        if batched:
            observe_many(child, counts)
        else:
            for value, n in counts.items():
                for _ in range(n):
                    child.observe(value)
        text = generate_latest(registry).decode().splitlines()
        exports.append([line for line in text if "_created" not in line])
    assert exports[0] == exports[1]
    assert 'd_bucket{le="0.01",pod="p"} 5.0' in exports[1]


def test_prepared_ingest_process_never_imports_pandas() -> None:
    code = (
        "import sys\n"
        "from workbench.ingest.service import prepare_ingest_process\n"
        "prepare_ingest_process()\n"
        "from workbench.ingest.bronze_writer import to_arrow\n"
        "from workbench.connectors.envelope import Envelope, build_envelopes\n"
        "from datetime import UTC, datetime\n"
        "rows = build_envelopes(b'{}', ingestion_id='d', source_type='s', topic='t',"
        " received_at=datetime.now(UTC), time_fields=[])\n"
        "to_arrow(rows)\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_timestamp_array_matches_pyarrow() -> None:
    shared = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)
    values = [
        shared,
        None,
        shared,
        datetime(2026, 11, 26, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    stamps = pa.timestamp("us", tz="UTC")
    assert timestamp_array(values).equals(pa.array(values, stamps))
    naive: list[datetime | None] = [
        datetime(2026, 1, 1, 12, 0)
    ]  # not produced by ingest; pyarrow's rule applies
    assert timestamp_array(naive).equals(pa.array(naive, stamps))


def test_integers_at_the_64_bit_edges_stay_exact() -> None:
    for number in (
        "1795673412253000000",  # epoch nanoseconds: 19 digits, still on the fast path
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901234567890",
    ):
        body = f'{{"n": {number}, "f": 0.1}}'.encode()
        [env] = build_envelopes(
            body,
            ingestion_id="ds",
            source_type="mqtt",
            topic="t",
            received_at=utcnow(),
            time_fields=[],
        )
        assert env.record == json.loads(body)
        assert env.record is not None and type(env.record["n"]) is int, number
    assert fast_json_safe(b'{"ts": 1795673412253000000}')
    assert not fast_json_safe(b'{"n": 18446744073709551616}')
    assert not fast_json_safe(b'{"n": -9223372036854775809}')
