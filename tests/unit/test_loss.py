import json
from datetime import UTC, datetime

from workbench.catalog.records import LossRow
from workbench.connectors.envelope import build_envelopes
from workbench.ingest.loss import LossCounts, LossLedger
from workbench.metrics.ingestor import IngestMetrics


def rows(body: dict | bytes, topic: str = "t") -> list:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return build_envelopes(
        data,
        ingestion_id="ds",
        source_type="mqtt",
        topic=topic,
        received_at=datetime.now(UTC),
        time_fields=["ts"],
    )


def test_counts_duplicates_flags_and_gaps() -> None:
    ledger = LossLedger(IngestMetrics())
    ledger.received("ds", 6)
    for seq in (1, 2, 5):  # 3 and 4 never arrive
        ledger.written(rows({"sensor_id": "a", "seq": seq}))
    ledger.written(rows({"sensor_id": "a", "seq": 2}))  # redelivered: same id, not a gap
    ledger.written(rows({"sensor_id": "b", "seq": 7}))  # another sensor starts anywhere
    ledger.written(rows(b"not json"))
    counts = ledger.take()["ds"]
    assert counts.to_dict() == {
        "received": 6,
        "written": 6,
        "flagged": 1,
        "duplicates": 1,
        "gaps": 2,
    }
    assert ledger.take() == {}  # drained


def test_counts_survive_a_failed_catalog_write() -> None:
    ledger = LossLedger(IngestMetrics())
    ledger.received("ds", 2)
    pending = ledger.take()
    ledger.received("ds", 1)
    ledger.give_back(pending)
    assert ledger.peek()["ds"].received == 3


def test_a_loss_row_adds_pending_counts_and_survives_json() -> None:
    stored = LossRow("ds", received=5, written=4, updated_at=datetime(2026, 11, 26, 10, tzinfo=UTC))
    merged = stored.adding(LossCounts(received=2, gaps=1).to_dict())
    assert (merged.received, merged.written, merged.gaps) == (7, 4, 1)
    assert merged.updated_at == stored.updated_at and stored.received == 5  # a new row
    assert LossRow.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged
    assert LossRow.from_dict(LossRow("new").to_dict()) == LossRow("new")  # never written yet
