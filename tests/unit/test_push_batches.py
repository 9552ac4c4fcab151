"""Column-wise batches give exactly what handling their rows one by one gives."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

import workbench.ingest.loss as loss
from workbench.api.loop_wakeup import LoopWaker
from workbench.catalog.extraction import read_sensor_ids
from workbench.catalog.schemas import DatasetObservation, FieldObservation, widen
from workbench.catalog.sensor_ids import SensorIdReader
from workbench.connectors.envelope import OBJECT, Envelope, build_envelopes, message_identity
from workbench.connectors.envelope_batch import EnvelopeBatch
from workbench.connectors.rest_push import RecordResult, parse_push_batch, push_answer
from workbench.core.settings import IngestSettings
from workbench.ingest.bronze_writer import BronzeWriter
from workbench.ingest.loss import SENSOR_KEYS, LossCounts, LossLedger
from workbench.lake.storage import LocalStorage
from workbench.metrics.ingestor import IngestMetrics

T0 = datetime(2026, 11, 1, tzinfo=UTC)
FIELDS = ["timestamp", "ts", "time"]
ROWS = lambda e: (  # noqa: E731
    e.message_id,
    e.ingestion_id,
    e.source_type,
    e.topic,
    e.received_at,
    e.event_time,
    e.event_time_raw,
    e.payload,
    e.payload_kind,
    e.error,
    e.meta,
    e.record,
)

OBJECT_LINES = [
    b'{"sensor_id":"a","seq":1,"timestamp":"2026-11-26T10:00:00.123Z","v":1.5}',
    b'{"sensor_id":"b","timestamp":"2026-11-26T10:00:00.123Z","v":2}',
    b'{"TimeStamp":"2026-11-26T11:00:00+02:00","x":{"y":1}}',
    b'{"timestamp":null,"ts":"next tuesday"}',
    b'{"timestamp":"yesterday"}',
    b'{"ts":""}',
    b"{}",
    b'{"a":"\xc3\xa9t\xc3\xa9"}\r',
    b'{"time":"2026-11-26 10:00:00"}',
]
NUMBER_LINES = [b'{"ts": 1795673412253}', b'{"ts": true}', b'{"ts": 1}', b'{"ts": [1]}']
OTHER_LINES = [b"[1, {}]", b"not json", b"\xff", b"42", b'{"big": 123456789012345678901234}']


def line_by_line(body: bytes) -> list[Envelope]:
    """The reference: each non-blank line decided as a single body, ids ``<body>:<line>``."""
    base = message_identity("/api/push/x", body)
    out: list[Envelope] = []
    for number, line in enumerate(body.split(b"\n")):
        if line and not line.isspace():
            out += build_envelopes(
                line,
                ingestion_id="ds",
                source_type="rest_push",
                topic="/api/push/x",
                received_at=T0,
                time_fields=FIELDS,
                message_id=f"{base}:{number}",
            )
    return out


def pushed(body: bytes) -> EnvelopeBatch:
    return parse_push_batch(
        body,
        content_type="application/x-ndjson",
        ingestion_id="ds",
        endpoint="/api/push/x",
        received_at=T0,
        time_fields=FIELDS,
    )


@pytest.mark.parametrize("seed", range(6))
def test_pushed_ndjson_batches_equal_their_lines_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    pool = OBJECT_LINES + (NUMBER_LINES if seed % 2 else []) + (OTHER_LINES if seed > 3 else [])
    lines = [rng.choice(pool) for _ in range(rng.randrange(1, 60))] + [b"", b"  "]
    rng.shuffle(lines)
    body = b"\n".join(lines)
    batch = pushed(body)
    expected = line_by_line(body)
    assert [ROWS(e) for e in batch.envelopes()] == [ROWS(e) for e in expected]
    assert batch.size == sum(e.size for e in expected)
    assert batch.flagged == sum(e.payload_kind != OBJECT for e in expected)
    # The answer, as the per-record results spell it.
    results = [
        RecordResult(
            i, e.message_id, "accepted" if e.payload_kind == OBJECT else "flagged", e.error
        )
        for i, e in enumerate(expected)
    ]
    flagged = sum(r.status != "accepted" for r in results)
    assert push_answer(batch) == orjson.dumps(
        {
            "accepted": len(results) - flagged,
            "flagged": flagged,
            "records": [r.to_dict() for r in results],
        }
    )


def test_a_push_of_blank_lines_has_no_rows() -> None:
    batch = pushed(b"\n  \n\n")
    assert len(batch) == 0 and batch.envelopes() == []
    assert json.loads(push_answer(batch)) == {"accepted": 0, "flagged": 0, "records": []}


def test_batches_concatenate_and_split_by_dataset() -> None:
    first, second = pushed(OBJECT_LINES[0]), pushed(b"\n".join(OBJECT_LINES[1:3]))
    joined = EnvelopeBatch.concat([first, second])
    assert [ROWS(e) for e in joined.envelopes()] == [
        ROWS(e) for e in first.envelopes() + second.envelopes()
    ]
    assert joined.size == first.size + second.size and len(joined) == 3
    other = Envelope("o", "other", "mqtt", "t", T0, None, None, "{}", OBJECT, record={})
    rows = [*first.envelopes(), other]
    assert [b.ingestion_id for b in EnvelopeBatch.of_datasets(rows)] == ["ds", "other"]


VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    -3,
    2.5,
    float("nan"),
    1e300,
    "x",
    "2026-11-01T10:00:00Z",
    "2026-11-01 10:00",
    "",
    [1, 2],
    [],
    {},
    {"a": 1},
    10**20,
]


def field_state(f: FieldObservation) -> tuple[Any, ...]:
    return (f.type, f.seen, f.nulls, repr(f.samples), repr(f.min), repr(f.max))


@pytest.mark.parametrize("seed", range(30))
def test_a_field_folded_column_wise_equals_one_value_at_a_time(seed: int) -> None:
    rng = random.Random(seed)
    pool = rng.sample(VALUES, rng.randrange(1, 6))
    one, many = FieldObservation(), FieldObservation()
    for _ in range(3):  # several batches: the state carries over
        values = [rng.choice(pool) for _ in range(rng.randrange(0, 30))]
        for value in values:
            one.add(value)
        many.add_all(values)
        assert field_state(many) == field_state(one)


def test_widening_does_not_depend_on_the_order_of_types() -> None:
    kinds = ["null", "boolean", "integer", "double", "timestamp", "string", "array"]
    for a in kinds:
        for b in kinds:
            assert widen(a, b) == widen(b, a)
            for c in kinds:
                assert widen(widen(a, b), c) == widen(a, widen(b, c))


@pytest.mark.parametrize("seed", range(20))
def test_a_dataset_folded_by_batch_equals_record_by_record(seed: int) -> None:
    rng = random.Random(seed)
    one, many = DatasetObservation("ds", "mqtt"), DatasetObservation("ds", "mqtt")
    for _ in range(4):
        if seed % 2:  # shapes vary, some nested
            records = [
                {rng.choice("abcde"): rng.choice(VALUES) for _ in range(rng.randrange(0, 4))}
                | ({"n": {"deep": rng.choice(VALUES)}} if rng.random() < 0.3 else {})
                for _ in range(rng.randrange(1, 20))
            ]
        else:  # one shape, as a sender's readings have (values may still be objects)
            keys = rng.sample("abcdef", rng.randrange(1, 5))
            records = [{k: rng.choice(VALUES) for k in keys} for _ in range(rng.randrange(1, 20))]
        times = [T0 + timedelta(seconds=rng.randrange(100)) for _ in records]
        for record, at in zip(records, times, strict=True):
            one.add(record, 7, at)
        many.add_batch(
            records,
            records=len(records),
            size=7 * len(records),
            first_seen=min(times),
            last_seen=max(times),
            skipped=0,
        )
        assert (many.records, many.bytes, many.first_seen, many.last_seen, many.objects) == (
            one.records,
            one.bytes,
            one.first_seen,
            one.last_seen,
            one.objects,
        )
        assert list(many.fields) == list(one.fields)  # new fields in the order first seen
        assert {p: field_state(f) for p, f in many.fields.items()} == {
            p: field_state(f) for p, f in one.fields.items()
        }


def one_by_one_sensor_ids(reader: SensorIdReader, records: list[dict[str, Any]]) -> set[str]:
    """The reference: each record's id by the known spellings, else a scan while allowed."""
    found: set[str] = set()
    for record in records:
        if reader.nested:
            sensor_id = reader.read(record)
        else:
            sensor_id = reader.read(record, scan=False) or reader.read_unknown(record)
        if sensor_id is not None:
            found.add(sensor_id)
    return found


@pytest.mark.parametrize("seed", range(20))
def test_sensor_ids_read_column_wise_equal_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    order = ["sensorid", "sensor_id", "device.id"] if seed % 3 == 0 else ["sensorid", "sensor_id"]
    ids = [f"s{i}" for i in range(4)] + [1, True, 1.0, {"x": 1}]
    records = []
    for _ in range(rng.randrange(1, 40)):
        record: dict[str, Any] = {"v": 1}
        for key in rng.sample(["sensorId", "SENSORID", "sensor_id", "Sensor_Id", "other"], 2):
            if rng.random() < 0.7:
                record[key] = rng.choice(ids)
        if rng.random() < 0.2:
            record["device"] = {"id": rng.choice(ids)}
        records.append(record)
    readers = [SensorIdReader(order), SensorIdReader(order)]
    for reader in readers:  # as the extractor starts a batch: scans left, the first scanned
        reader.scans_left = 3
        reader.read(records[0])
    found: set[str] = set()
    read_sensor_ids(readers[0], records, found)
    assert found == one_by_one_sensor_ids(readers[1], records)
    assert readers[0].spellings == readers[1].spellings
    assert readers[0].scans_left == readers[1].scans_left


def reference_written(ledger: LossLedger, rows: list[Envelope]) -> None:
    """The per-row ledger: a remembered id is a duplicate, else a possible gap."""
    half = loss.RECENT_IDS // 2
    for env in rows:
        counts = ledger._counts(env.ingestion_id)
        counts.written += 1
        counts.flagged += env.payload_kind != OBJECT
        key = hash(env.message_id)
        if key in ledger._recent or key in ledger._older:
            counts.duplicates += 1
            continue
        if len(ledger._recent) >= half:
            ledger._older, ledger._recent = ledger._recent, set()
        ledger._recent.add(key)
        record = env.record
        seq = record.get("seq") if record else None
        if type(seq) is not int:
            continue
        assert record is not None
        sensor = next((str(record[k]) for k in SENSOR_KEYS if k in record), "")
        last_of = ledger._last_seq.setdefault(env.ingestion_id, {})
        last = last_of.get(sensor)
        if last is None or seq > last:
            last_of[sensor] = seq
        if last is not None and seq > last + 1:
            counts.gaps += seq - last - 1


@pytest.mark.parametrize("remembered", [40, 400, 200_000])
def test_the_ledger_counts_a_batch_as_it_counts_its_rows(
    remembered: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loss, "RECENT_IDS", remembered)
    rng = random.Random(remembered)
    batched, reference = LossLedger(IngestMetrics()), LossLedger(IngestMetrics())
    seen: list[str] = []
    for flush in range(40):
        rows = []
        for i in range(rng.choice([1, 5, 30, 120])):
            mid = rng.choice(seen) if seen and rng.random() < 0.05 else f"m{flush}-{i}"
            seen.append(mid)
            body = json.dumps(
                {
                    rng.choice(["sensor_id", "id", "x"]): f"s{rng.randrange(4)}",
                    "seq": rng.choice([rng.randrange(30), True, "4", None]),
                }
            ).encode()
            if rng.random() < 0.05:
                body = b"not json"
            rows += build_envelopes(
                body,
                ingestion_id="ds",
                source_type="mqtt",
                topic="t",
                received_at=T0,
                time_fields=[],
                message_id=mid,
            )
        batched.written_batch(EnvelopeBatch.from_envelopes(rows))
        reference_written(reference, rows)
        assert batched.peek() == reference.peek()
        assert (batched._recent, batched._older) == (reference._recent, reference._older)
        assert batched._last_seq == reference._last_seq
    assert batched.peek()["ds"].duplicates > 0 and batched.peek()["ds"].gaps > 0
    assert isinstance(batched.peek()["ds"], LossCounts)


def test_one_drain_resolves_every_future_queued_before_it() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        scheduled = 0
        original = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any) -> Any:
            nonlocal scheduled
            scheduled += 1
            return original(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        waker = LoopWaker(loop)
        futures = [loop.create_future() for _ in range(50)]
        cancelled = futures[3]
        cancelled.cancel()
        threads = [threading.Thread(target=waker.resolve, args=(f,)) for f in futures]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        await asyncio.gather(*[f for f in futures if f is not cancelled])
        later = loop.create_future()
        waker.resolve(later)
        assert await later
        return scheduled

    assert asyncio.run(main()) == 2  # one drain for the 50, one for the later one


def test_a_flush_of_several_pushes_writes_their_rows_in_order_in_one_file(tmp_path: Path) -> None:
    writer = BronzeWriter(
        LocalStorage(str(tmp_path)), IngestSettings(flush_seconds=60), IngestMetrics()
    )
    pushes = [pushed(b"\n".join(OBJECT_LINES[i : i + 3])) for i in (0, 3, 6)]
    for batch in pushes:
        writer.add(batch)
    writer.start()
    assert writer.stop()
    [path] = list((tmp_path / "bronze").rglob("*.parquet"))
    assert pq.ParquetFile(path).num_row_groups == 1
    table = pq.read_table(path)
    rows = [e for batch in pushes for e in batch.envelopes()]
    assert table["message_id"].to_pylist() == [e.message_id for e in rows]
    assert table["event_time"].to_pylist() == [e.event_time for e in rows]
    assert table["received_at"].to_pylist() == [e.received_at for e in rows]
    assert table["payload"].to_pylist() == [e.payload for e in rows]
    assert set(table["meta"].to_pylist()) == {"{}"} and set(table["error"].to_pylist()) == {None}
