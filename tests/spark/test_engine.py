"""The engine service as a real process: HTTP API, streams, Spark Connect, graceful stop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.engine import start_engine, stop_engine
from tests.fixtures.services import make_settings
from tests.spark.conftest import WriteBronze, bronze_row
from workbench.client.credentials import auth_headers
from workbench.core.settings import Settings

pytestmark = pytest.mark.spark


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Settings]:
    settings = make_settings(tmp_path, engine={"gold_trigger_seconds": 1.0})
    proc = start_engine(settings)
    yield settings
    assert stop_engine(proc) == 0, (tmp_path / "engine.log").read_text()[-3000:]


@pytest.fixture
def client(engine: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Spark Connect session to the engine, stopped after the test.

    Connect sets ``SPARK_CONNECT_MODE_ENABLED`` for the whole process (when no classic session
    exists yet); scoped to the test, later tests still get classic sessions.
    """
    from workbench.spark.session import connect_session

    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    session = connect_session(engine)
    yield session
    session.stop()


@pytest.fixture
def http(engine: Settings) -> Iterator[httpx.Client]:
    """HTTP to the engine as the stack's admin: every route but ``/health`` needs a token."""
    with httpx.Client(headers=auth_headers(engine)) as session:
        yield session


def _until(check: Any, timeout: float = 90.0) -> Any:
    """Poll a live service until ``check()`` is truthy (the engine runs on its own clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"condition not met in {timeout}s")


def test_engine_serves_streams_and_connect(
    engine: Settings, client: Any, http: httpx.Client, write_bronze: WriteBronze
) -> None:
    base = f"http://{engine.engine.host}:{engine.engine.port}"
    # /health is open and tells nothing but its status; the rest needs the stack's admin token.
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/status").status_code == 401

    assert client.sql("SELECT * FROM gold.sensor_averages").collect() == []  # exists before data

    # Both readings 40 s old, in one window: their latencies are known within the test's time.
    event = time.time() - 40.0
    ts = datetime.fromtimestamp(event, UTC).isoformat().replace("+00:00", "Z")
    write_bronze(
        engine,
        "mqtt_demo_0001",
        [
            bronze_row("e1", {"sensor_id": "s", "temperature": 10, "ts": ts}),
            bronze_row("e2", {"sensor_id": "s", "temperature": 20, "ts": ts}),
        ],
    )
    rows = _until(
        lambda: client.sql(
            "SELECT sensor_id, avg_value, count FROM gold.sensor_averages "
            "WHERE field = 'temperature'"
        ).collect()
    )
    assert [(r.sensor_id, r.avg_value, r["count"]) for r in rows] == [("s", 15.0, 2)]
    assert client.table("silver.readings").count() == 2

    # Rule preview over Spark Connect: the engine's JVM function, the stored rules.
    from workbench.catalog.records import ValueRule
    from workbench.catalog.store import Catalog
    from workbench.enrichment.preview import preview_rules

    def regex(pattern: str) -> dict[str, str]:
        return {"check": "regex", "pattern": pattern}

    # Patterns are checked by Spark's (Java's) regex engine over Connect too.
    tried = [
        ValueRule(1, "python_only", "validate", "sensorId", regex("(?P<s>s)")),
        ValueRule(2, "java", "validate", "sensorId", regex("^(?<s>x)$")),
    ]
    catalog = Catalog(engine.catalog.url)
    try:
        preview = preview_rules(client, engine, catalog, ingestion_id="mqtt_demo_0001")
        checked = preview_rules(
            client, engine, catalog, ingestion_id="mqtt_demo_0001", value_rules=tried
        )
    finally:
        catalog.close()
    outcomes = {o.name: o for o in checked.outcomes}
    assert "Java" in (outcomes["python_only"].skipped_reason or "")
    assert (outcomes["java"].skipped_reason, outcomes["java"].flagged) == (None, 2)
    assert sorted(r["message_id"] for r in preview.before) == ["e1", "e2"]
    after = {r["message_id"]: r for r in preview.after}
    assert {m: (r["sensor_id"], r["numeric"]["temperature"]) for m, r in after.items()} == {
        "e1": ("s", 10.0),
        "e2": ("s", 20.0),
    }

    status = {q["name"]: q for q in http.get(f"{base}/status").json()["queries"]}
    assert set(status) == {"enrichment", "gold"}
    assert all(q["active"] and q["exception"] is None for q in status.values())
    assert status["enrichment"]["last_batch_id"] is not None

    def records_counted() -> bool:
        text = http.get(f"{base}/metrics").text
        assert "spark_active_streams{pod=" in text
        assert 'spark_batches_processed_total{pod="' in text
        prefix = "enrichment_records_processed_total{"
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
        return values == [2.0]

    _until(records_counted, timeout=30)

    # Every engine metric is exported; latencies were observed per record.
    # A query through the query service is counted by the engine itself (no client reports).
    answer = http.post(f"{base}/api/computations/sensor_averages/run", json={})
    assert answer.status_code == 200, answer.text
    text = http.get(f"{base}/metrics").text
    for name in ENGINE_METRICS:
        assert f"{name}{{" in text or f"{name}_bucket{{" in text, name
    assert _sample(text, "pipeline_sensor_to_enrichment_latency_seconds_count") == 2.0
    # Event → silver commit, per record: ≥ 40 s, and no more than the time since the event.
    silver_sum = _sample(text, "pipeline_sensor_to_enrichment_latency_seconds_sum")
    assert 2 * 40.0 <= silver_sum <= 2 * (time.time() - event)
    assert _sample(text, "pipeline_sensor_to_enrichment_latency_seconds_bucket", 'le="30.0"') == 0
    assert _sample(text, "pipeline_sensor_to_enrichment_latency_seconds_bucket", 'le="300.0"') == 2
    assert _sample(text, "pipeline_sensor_to_gold_latency_seconds_count") == 2.0
    # Both readings are live (within engine.live_horizon_seconds): nothing historical.
    assert _sample(text, "pipeline_historical_records_total{", 'layer="silver"') == 0.0
    assert _sample(text, 'gold_records_written_total{pod="', 'table="sensor_averages"') >= 1.0
    assert _sample(text, "spark_source_latest_offset_seconds{", 'query="enrichment"') >= 0.0
    assert _sample(text, "gold_late_records_total{") == 0.0

    for step in ("allowed_ids", "should_process", "filter", "transform", "write"):
        assert f'step="{step}"' in text
    assert _sample(text, "computation_executions_total{", 'status="success"') == 1.0

    def watermarks() -> dict[str, float]:
        metrics_text = http.get(f"{base}/metrics").text
        prefix = "spark_query_watermark_seconds{"
        lines = [ln for ln in metrics_text.splitlines() if ln.startswith(prefix)]
        found = {ln.split('query="')[1].split('"')[0]: float(ln.split()[-1]) for ln in lines}
        return found if {"gold", "enrichment"} <= set(found) else {}

    # Gold's watermark is the newest event time (both readings are at ``event``) minus
    # engine.watermark, reported by the next batch with rows; the enrichment's is the
    # de-duplication's horizon (processing time).
    write_bronze(
        engine,
        "mqtt_demo_0001",
        [bronze_row("e3", {"sensor_id": "s", "temperature": 30, "ts": ts})],
    )
    found = _until(watermarks, timeout=60)
    assert found["gold"] == pytest.approx(event - 120.0, abs=0.002)
    minutes = engine.engine.dedupe_minutes
    assert time.time() - 60 * minutes - 60 < found["enrichment"] < time.time() - 60 * minutes
    status = {q["name"]: q for q in http.get(f"{base}/status").json()["queries"]}
    assert status["gold"]["watermark"] and status["enrichment"]["watermark"]


ENGINE_METRICS = (
    "pipeline_sensor_to_enrichment_latency_seconds",
    "pipeline_sensor_to_gold_latency_seconds",
    "pipeline_enrichment_to_gold_latency_seconds",
    "pipeline_stage_latency_seconds",
    "pipeline_historical_records_total",
    "pipeline_historical_age_seconds",
    "spark_batch_processing_latency_seconds",
    "enrichment_records_processed_total",
    "gold_records_written_total",
    "spark_batches_processed_total",
    "spark_active_streams",
    "spark_stream_status",
    "computation_executions_total",
    "computation_execution_latency_seconds",
    "pipeline_layer_data_age_seconds",
    "pipeline_processing_lag_seconds",
    "normalization_rule_applied_total",
    "step_duration_seconds",
    "spark_source_latest_offset_seconds",
    "gold_late_records_total",
)


def _sample(text: str, prefix: str, contains: str = "") -> float:
    """The value of the one sample line starting with ``prefix`` (and containing ``contains``)."""
    lines = [ln for ln in text.splitlines() if ln.startswith(prefix) and contains in ln]
    assert len(lines) == 1, (prefix, lines)
    return float(lines[0].split()[-1])
