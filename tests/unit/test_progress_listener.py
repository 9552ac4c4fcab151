"""The engine's progress listener: batch counts, and the time each trigger takes to find input."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from workbench.api.engine_app import (
    SLOW_INPUT_WARN_EVERY_SECONDS,
    ProgressListener,
    query_watermark,
    slow_input_advice,
)
from workbench.core.settings import Settings
from workbench.metrics.engine import EngineMetrics


def _event(
    batch_id: int,
    latest_offset_ms: int,
    name: str = "enrichment",
    event_time: dict[str, str] | None = None,
) -> SimpleNamespace:
    """A progress event as pyspark hands it to ``onQueryProgress`` (the fields read)."""
    progress = SimpleNamespace(
        name=name,
        id="3f1c",
        batchId=batch_id,
        numInputRows=10,
        durationMs={"latestOffset": latest_offset_ms, "triggerExecution": 900},
        eventTime=event_time or {},
    )
    return SimpleNamespace(progress=progress)


def _metric(metrics: EngineMetrics, line_start: str) -> str:
    text = generate_latest(metrics.registry).decode()
    return next(ln for ln in text.splitlines() if ln.startswith(line_start))


def test_idle_triggers_set_the_input_gauge_but_count_no_batch() -> None:
    metrics = EngineMetrics(pod="p")
    listener = ProgressListener(metrics)
    listener.onQueryProgress(_event(4, 120))
    listener.onQueryProgress(_event(4, 80))  # an idle trigger repeats the batch id
    gauge = _metric(metrics, 'spark_source_latest_offset_seconds{pod="p",query="enrichment"}')
    assert float(gauge.split()[-1]) == pytest.approx(0.08)
    batches = _metric(metrics, 'spark_batches_processed_total{pod="p",status="success"}')
    assert float(batches.split()[-1]) == 1.0


def test_slow_input_warns_with_advice_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    advice = slow_input_advice(Settings())
    listener = ProgressListener(
        EngineMetrics(pod="p"), slow_input_advice=advice, clock=lambda: now[0]
    )
    caplog.set_level(logging.WARNING, logger="workbench.api.engine_app")

    listener.onQueryProgress(_event(1, 300))  # fast enough: no warning
    assert not caplog.records
    listener.onQueryProgress(_event(2, 1300))
    listener.onQueryProgress(_event(3, 1400))  # slow again, within the interval: still one
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "query=enrichment latest_offset_s=1.30" in message
    assert "BRONZE_RETENTION_DAYS" in message

    now[0] += SLOW_INPUT_WARN_EVERY_SECONDS
    listener.onQueryProgress(_event(4, 1500, name="gold"))  # another query has no advice
    listener.onQueryProgress(_event(5, 1500))
    assert len(caplog.records) == 3
    assert "query=gold" in caplog.records[1].getMessage()
    assert "progress lines" in caplog.records[1].getMessage()


def test_the_watermark_gauge_follows_spark_s_progress() -> None:
    metrics = EngineMetrics(pod="p")
    listener = ProgressListener(metrics)
    # Before the first event Spark reports the epoch: no watermark yet, no gauge.
    listener.onQueryProgress(_event(1, 10, "gold", {"watermark": "1970-01-01T00:00:00.000Z"}))
    text = generate_latest(metrics.registry).decode()
    assert 'spark_query_watermark_seconds{pod="p",query="gold"}' not in text
    moved = {"watermark": "2026-11-27T10:02:00.000Z", "max": "2026-11-27T10:04:00.000Z"}
    listener.onQueryProgress(_event(2, 10, "gold", moved))
    listener.onQueryProgress(_event(3, 10, "enrichment"))  # a query without a watermark
    gauge = _metric(metrics, 'spark_query_watermark_seconds{pod="p",query="gold"}')
    assert float(gauge.split()[-1]) == query_watermark(moved) == 1795773720.0
    assert query_watermark(None) is None and query_watermark({}) is None
