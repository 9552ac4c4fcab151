"""The stream manager restarts a failed query, after a backoff, and reports why it failed; a
query failed by a terminal error stays stopped."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.core.errors import ConfigError, NotFoundError
from workbench.streams.queries import start_batch_query
from workbench.streams.supervisor import StreamManager

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

    failures: list[tuple[str, str]] = []
    manager = StreamManager(backoff_base=0.0, on_failure=lambda *failed: failures.append(failed))
    manager.register("flaky", start)
    manager.start_all(poll_seconds=3600)  # the test drives the monitor with check()
    first = manager._queries["flaky"].query
    assert first is not None
    with pytest.raises(Exception, match="boom in the first batch"):
        first.awaitTermination()

    manager.check()  # notices the failure, schedules the restart (no backoff here)
    [status] = manager.status()
    assert not status.active
    assert status.exception is not None and "boom in the first batch" in status.exception
    [(name, error)] = failures  # the engine counts it in spark_batches_processed_total
    assert name == "flaky" and "boom in the first batch" in error

    manager.check()  # restarts
    [status] = manager.status()
    assert status.active and status.restarts == 1
    assert manager.active_count() == 1 and len(failures) == 1
    manager.stop_all()
    assert manager.active_count() == 0


def test_unregister_stops_and_forgets_a_query(spark: Any) -> None:
    def start(name: str) -> Any:
        return (
            spark.readStream.format("rate")
            .load()
            .writeStream.queryName(name)
            .format("noop")
            .trigger(processingTime="100 milliseconds")
            .start()
        )

    manager = StreamManager(backoff_base=0.0)
    manager.register("keep", lambda: start("keep"))
    manager.register("gone", lambda: start("gone"))
    manager.start_all(poll_seconds=3600)
    gone = manager._queries["gone"].query
    assert gone is not None and gone.isActive
    manager.unregister("gone")
    assert manager.names() == ["keep"] and not gone.isActive
    manager.check()  # the monitor does not bring it back
    assert [s.name for s in manager.status()] == ["keep"] and manager.active_count() == 1
    with pytest.raises(NotFoundError):
        manager.unregister("gone")
    manager.register("gone", lambda: start("gone"))  # the same name again starts afresh
    assert manager.start("gone").state == "running"
    manager.stop_all()
    assert manager.active_count() == 0


def test_a_terminal_batch_failure_is_not_restarted(spark: Any, tmp_path: Any) -> None:
    batches: list[int] = []

    class Misconfigured:
        def process(self, _batch: Any, batch_id: int) -> None:
            batches.append(batch_id)
            raise ConfigError("value rule 3 names no field", rule_id=3)

    def start() -> Any:
        source = spark.readStream.format("rate").option("rowsPerSecond", 1).load()
        return start_batch_query(
            source,
            lambda _app_id: Misconfigured(),
            name="misconfigured",
            checkpoints=str(tmp_path),
            trigger="processing_time",
            interval_seconds=0.1,
            attempts=3,
            failures=manager.failures,
        )

    stopped: list[tuple[str, str]] = []
    manager = StreamManager(backoff_base=0.0, on_terminal=lambda *s: stopped.append(s))
    manager.register("misconfigured", start)
    manager.start_all(poll_seconds=3600)  # the test drives the monitor with check()
    first = manager._queries["misconfigured"].query
    assert first is not None
    with pytest.raises(Exception, match="value rule 3 names no field"):
        first.awaitTermination()

    for _ in range(3):
        manager.check()  # no backoff here: a restartable query would be running again
    [status] = manager.status()
    assert (status.state, status.error_code, status.restart_scheduled) == (
        "failed",
        "config_error",
        False,
    )
    assert status.restarts == 0 and manager.active_count() == 0
    assert batches == [0]  # tried once, not once per attempt
    assert stopped == [("misconfigured", "config_error")]
    manager.stop_all()
