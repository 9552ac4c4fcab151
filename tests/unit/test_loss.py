import json
from datetime import UTC, datetime

from workbench.connectors.envelope import build_envelopes
from workbench.ingest.loss import LossLedger
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
