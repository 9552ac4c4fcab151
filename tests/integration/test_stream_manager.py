"""The stream manager on a real Spark: by-name control over HTTP and the CLI, graceful
stop, lag behind bronze and Delta, and a schema-change restart that loses and repeats nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.services import make_settings
from tests.integration.conftest import wait_for
from tests.spark.conftest import WriteBronze, bronze_row, spark, write_bronze  # noqa: F401
from workbench.client.credentials import auth_headers
from workbench.core.errors import NotFoundError
from workbench.core.settings import Settings
from workbench.streams.status import Lag
from workbench.streams.supervisor import StreamManager

pytestmark = pytest.mark.spark


def _rate_query(session: Any, name: str, on_batch: Any = None) -> Any:
    def _batch(df: Any, batch_id: int) -> None:
        if on_batch is not None:
            on_batch(batch_id)

    return (
        session.readStream.format("rate")
        .option("rowsPerSecond", 5)
        .load()
        .writeStream.queryName(name)
        .foreachBatch(_batch)
        .trigger(processingTime="200 milliseconds")
        .start()
    )


@pytest.fixture
def manager() -> Iterator[StreamManager]:
    m = StreamManager(backoff_base=0.0, stop_timeout=10.0)
    yield m
    m.stop_all(timeout=5)


@pytest.fixture
def engine_http(tmp_path: Path, manager: StreamManager) -> Iterator[Settings]:
    """The engine's real HTTP app over ``manager``, served by uvicorn on a free port."""
    import uvicorn

    from workbench.api.engine_app import EngineMetrics, build_engine_app
    from workbench.catalog.store import Catalog

    settings = make_settings(tmp_path)
    catalog = Catalog(settings.catalog.url)  # the app identifies tokens against it
    app = build_engine_app(settings, manager, EngineMetrics(pod="test"), catalog)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.engine.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="engine http")
    yield settings
    server.should_exit = True
    thread.join(timeout=10)
    catalog.close()


def test_by_name_over_http_and_cli(
    spark: Any,  # noqa: F811
    manager: StreamManager,
    engine_http: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from workbench import cli
    from workbench.client.engine_client import EngineClient

    manager.register("ticks", lambda: _rate_query(spark, "ticks"))
    manager.start_all(poll_seconds=3600)  # the test drives the monitor with check()
    client = EngineClient(engine_http)
    base = f"http://127.0.0.1:{engine_http.engine.port}"
    auth = auth_headers(engine_http)

    [status] = httpx.get(f"{base}/status", headers=auth).json()["queries"]
    assert status["state"] == "running" and status["restarts"] == 0

    stopped = client.stop("ticks")
    assert stopped.state == "stopped" and not stopped.active
    manager.check()  # the auto-restart must not undo a stop by name
    assert client.stream("ticks").state == "stopped"
    assert manager.active_count() == 0

    assert client.start("ticks").state == "running"
    first_id = client.stream("ticks").id
    restarted = client.restart("ticks")
    assert restarted.state == "running" and restarted.restarts == 1
    assert restarted.id != first_id  # a new run (this query has no checkpoint)
    wait_for(lambda: client.stream("ticks").last_batch_id is not None, what="a batch")
    status = client.stream("ticks")
    assert status.input_rows_per_second is not None
    assert status.last_batch_duration_ms is not None
    assert status.last_latest_offset_ms is not None

    with pytest.raises(NotFoundError, match="no stream named 'nope'"):
        client.stop("nope")
    assert httpx.post(f"{base}/api/streams/nope/start", headers=auth).status_code == 404

    for key, value in {"HOST": "127.0.0.1", "PORT": str(engine_http.engine.port)}.items():
        monkeypatch.setenv(f"WORKBENCH__ENGINE__{key}", value)
    assert engine_http.auth.token is not None
    monkeypatch.setenv("WORKBENCH__AUTH__TOKEN", engine_http.auth.token.get_secret_value())
    assert cli.main(["streams", "stop", "ticks"]) == 0
    assert '"state": "stopped"' in capsys.readouterr().out
    assert cli.main(["streams", "list"]) == 0
    assert '"name": "ticks"' in capsys.readouterr().out
    assert cli.main(["streams", "stop", "nope"]) == 1


def test_a_query_that_fails_to_start_is_retried(spark: Any, manager: StreamManager) -> None:  # noqa: F811
    attempts: list[int] = []

    def start() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("table not there yet")
        return _rate_query(spark, "late")

    manager.register("late", start)
    manager.start_all(poll_seconds=3600)  # must not raise: the engine keeps serving
    [status] = manager.status()
    assert status.state == "failed" and "table not there yet" in (status.exception or "")
    manager.check()  # backoff 0: retried now
    [status] = manager.status()
    assert status.state == "running" and status.restarts == 1


def test_stop_waits_for_the_running_batch(spark: Any, manager: StreamManager) -> None:  # noqa: F811
    started, finished = threading.Event(), []

    def slow_batch(batch_id: int) -> None:
        started.set()
        time.sleep(2.0)
        finished.append(batch_id)

    manager.register("slow", lambda: _rate_query(spark, "slow", slow_batch))
    manager.start_all(poll_seconds=3600)
    assert started.wait(30)
    t0 = time.monotonic()
    stopper = threading.Thread(target=manager.stop, args=("slow",))
    stopper.start()
    wait_for(lambda: manager.status_of("slow").state == "stopping", what="state stopping")
    assert manager.status_of("slow").batch_running  # still visible while it finishes
    stopper.join(timeout=30)
    assert manager.status_of("slow").state == "stopped"
    # The batch that was running completed instead of being interrupted.
    assert finished, "stop interrupted the running batch"
    assert time.monotonic() - t0 < 10


def test_delta_source_lag(spark: Any, tmp_path: Path) -> None:  # noqa: F811
    from workbench.streams.queries import DeltaSourceLag

    table, checkpoint = str(tmp_path / "table"), str(tmp_path / "cp")
    for i in range(2):  # versions 0 and 1
        spark.range(i, i + 1).write.format("delta").mode("append").save(table)
    lag = DeltaSourceLag(table, checkpoint)
    assert lag().to_dict()["pending"] == 2  # nothing read yet

    query = (
        spark.readStream.format("delta")
        .load(table)
        .writeStream.foreachBatch(lambda _df, _id: None)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    assert lag().to_dict() == {"kind": "versions", "pending": 0, "seconds": 0.0}
    spark.range(5, 6).write.format("delta").mode("append").save(table)
    time.sleep(0.2)
    after = lag()
    assert after.pending == 1 and after.seconds >= 0.2


def test_schema_change_restart_mid_way_keeps_silver_exact(
    spark: Any,  # noqa: F811
    tmp_path: Path,
    write_bronze: WriteBronze,  # noqa: F811
) -> None:
    from deltalake import DeltaTable

    from workbench.catalog.store import Catalog
    from workbench.enrichment import silver_stream as enrichment
    from workbench.enrichment.bronze_source import ManifestLag
    from workbench.streams.queries import checkpoint_path

    # One file per batch, so the restart lands between batches of a backlog.
    settings = make_settings(tmp_path, engine={"max_files_per_trigger": 1})
    catalog = Catalog(settings.catalog.url)

    def rows(batch: int) -> list[dict[str, Any]]:
        return [
            bronze_row(f"m{batch}-{i}", {"sensor_id": "s1", "temperature": i}) for i in range(5)
        ]

    for batch in range(3):
        write_bronze(settings, "mqtt_demo_0001", rows(batch))
    lag = ManifestLag(
        settings, checkpoint_path(settings.lake.checkpoints, enrichment.CHECKPOINT), spark
    )
    before = lag()
    assert before.kind == "files" and before.pending == 3 and before.seconds > 0

    versions = {"mqtt_demo_0001": 1}
    manager = StreamManager(backoff_base=0.0, stop_timeout=30.0)
    manager.register(
        enrichment.QUERY_NAME,
        lambda: enrichment.start_enrichment(spark, settings, catalog),
        lag=lag,
    )
    manager.watch_schema(lambda: dict(versions), queries=[enrichment.QUERY_NAME])
    manager.start_all(poll_seconds=3600)
    try:
        wait_for(lambda: lag().pending <= 2, timeout=180, what="a first committed batch")
        assert manager.check_schema(force=True) == []  # unchanged: no restart
        versions["mqtt_new_0002"] = 1  # a new dataset is a baseline, not a change
        assert manager.check_schema(force=True) == []
        versions["mqtt_demo_0001"] = 2  # the catalog widened a field
        assert manager.check_schema(force=True) == ["mqtt_demo_0001"]
        [status] = manager.status()
        assert status.restarts == 1 and status.state == "running"
        assert (status.last_restart_reason or "").startswith("schema change")
        write_bronze(settings, "mqtt_demo_0001", rows(3))  # arrives after the restart
        wait_for(lambda: lag().pending == 0, timeout=180, what="bronze fully processed")
        assert manager.status()[0].lag == Lag("files", 0, 0.0)
    finally:
        manager.stop_all()
        catalog.close()

    silver = DeltaTable(settings.lake.silver_readings).to_pyarrow_table(columns=["message_id"])
    ids = silver["message_id"].to_pylist()
    expected = {f"m{b}-{i}" for b in range(4) for i in range(5)}
    assert len(ids) == len(expected) and set(ids) == expected  # nothing lost, nothing twice
