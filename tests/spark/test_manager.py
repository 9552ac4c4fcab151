"""The stream manager restarts a failed query, after a backoff, and reports why it failed."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.enrichment.manager import StreamManager

pytestmark = pytest.mark.spark


def test_failed_query_is_restarted_and_reported(spark: Any) -> None:
    calls: list[int] = []

    def start() -> Any:
        def _batch(_df: Any, batch_id: int) -> None:
            calls.append(batch_id)
            if len(calls) == 1:
                raise ValueError("boom in the first batch")

        return (
            spark.readStream.format("rate")
            .option("rowsPerSecond", 1)
            .load()
            .writeStream.queryName("flaky")
            .foreachBatch(_batch)
            .trigger(processingTime="100 milliseconds")
            .start()
        )

    manager = StreamManager(backoff_base=0.0)
    manager.register("flaky", start)
    manager.start_all(poll_seconds=3600)  # the test drives the monitor with check()
    first = manager._queries["flaky"].query
    assert first is not None
    with pytest.raises(Exception, match="boom in the first batch"):
        first.awaitTermination()

    manager.check()  # notices the failure, schedules the restart (no backoff here)
    [status] = manager.status()
    assert not status["active"]
    assert "boom in the first batch" in status["exception"]

    manager.check()  # restarts
    [status] = manager.status()
    assert status["active"] and status["restarts"] == 1
    assert manager.active_count() == 1
    manager.stop_all()
    assert manager.active_count() == 0
