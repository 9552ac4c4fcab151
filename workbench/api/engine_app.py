"""The engine process: Spark driver, enrichment and gold streams, Spark Connect, HTTP API.

Run as ``python -m workbench.api.engine_app`` (settings from ``WORKBENCH__*`` variables) or via
:func:`run_engine`. Endpoints: ``GET /health`` (open liveness: the status word only),
``GET /status`` (per query: state, progress, rows/s, last batch duration, restarts, error and
its code, lag behind its input), ``GET /metrics`` (Prometheus, scrape token), the stream
controls of
:mod:`workbench.api.engine_routes` and the stream computations of
:mod:`workbench.api.stream_computation_routes` (one managed query ``computation:<name>``
each). SIGTERM or SIGINT stops the HTTP server, then each query after its running batch
(bounded by a 30 s stop timeout), then the session.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from workbench.analytics.computation_runner import Computations
from workbench.analytics.query_service import QueryService
from workbench.analytics.tile_cache import TileCache
from workbench.api.alert_routes import build_alert_router
from workbench.api.auth import Gate
from workbench.api.dashboard_routes import build_dashboard_router
from workbench.api.engine_routes import build_stream_router
from workbench.api.http_errors import install_error_handlers
from workbench.api.query_routes import build_query_router
from workbench.api.stream_computation_routes import build_stream_computation_router
from workbench.api.user_routes import build_user_router
from workbench.catalog.store import Catalog
from workbench.core.logs import configure_logging
from workbench.core.settings import Settings, ensure_local_dirs, load_settings
from workbench.enrichment import silver_stream as enrichment
from workbench.enrichment.bronze_source import ManifestLag
from workbench.gold import alerts, averages
from workbench.gold import gold_stream as gold
from workbench.gold.computation_service import StreamComputations
from workbench.maintenance.runner import MaintenanceScheduler
from workbench.metrics.engine import EngineMetrics
from workbench.spark.session import build_session
from workbench.streams.queries import DeltaSourceLag, checkpoint_path
from workbench.streams.supervisor import STOP_TIMEOUT_SECONDS, StreamManager

log = logging.getLogger(__name__)

#: Spark's own bound on stopping a query's thread, the same as the manager's wait for a batch.
STOP_TIMEOUT = f"{int(STOP_TIMEOUT_SECONDS)}s"

#: A trigger that takes longer than this to find its new input (Spark's ``latestOffset``) is
#: logged as a warning, at most once per :data:`SLOW_INPUT_WARN_EVERY_SECONDS` per query.
SLOW_INPUT_SECONDS = 0.5
SLOW_INPUT_WARN_EVERY_SECONDS = 600.0

#: How often the schema watchdog reads the catalog's schema versions.
SCHEMA_WATCH_SECONDS = 5.0


class ProgressListener(StreamingQueryListener):
    """Feeds :class:`EngineMetrics` from query progress events (no extra Spark jobs).

    It hears the queries of the engine's session; stream computations run in sessions of their
    own and count their batches themselves
    (:class:`workbench.gold.computation_query.ComputationWriter`).
    """

    def __init__(
        self,
        metrics: EngineMetrics,
        *,
        slow_input_advice: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.slow_input_advice = dict(slow_input_advice or {})
        self._clock = clock
        self._last_batch: dict[str, int] = {}
        self._last_warning: dict[str, float] = {}

    def onQueryStarted(self, event: Any) -> None:
        log.info("stream running query=%s id=%s", event.name, event.id)

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        name = progress.name or str(progress.id)
        durations = dict(progress.durationMs or {})
        # Every trigger finds its input, idle ones too.
        if "latestOffset" in durations:
            self._input_found(name, durations["latestOffset"] / 1000.0)
        watermark = query_watermark(progress.eventTime)
        if watermark is not None:
            self.metrics.watermark_moved(name, watermark)
        # Idle triggers repeat the previous batch id; count each batch once.
        if self._last_batch.get(name) == progress.batchId:
            return
        self._last_batch[name] = progress.batchId
        duration_ms = durations.get("triggerExecution")
        self.metrics.batch_finished(name, None if duration_ms is None else duration_ms / 1000.0)
        # Where a trigger's time went (Spark's own phases: latestOffset, walCommit, addBatch
        # holds our batch function, commitOffsets, ...), one line per batch.
        log.info(
            "stream progress query=%s batch_id=%s rows=%s duration_ms=%s",
            name,
            progress.batchId,
            progress.numInputRows,
            json.dumps(durations, sort_keys=True),
        )

    def _input_found(self, name: str, seconds: float) -> None:
        self.metrics.input_found(name, seconds)
        if seconds < SLOW_INPUT_SECONDS:
            return
        now = self._clock()
        last = self._last_warning.get(name)
        if last is not None and now - last < SLOW_INPUT_WARN_EVERY_SECONDS:
            return
        self._last_warning[name] = now
        log.warning(
            "stream slow to find new input query=%s latest_offset_s=%.2f: %s",
            name,
            seconds,
            self.slow_input_advice.get(
                name, "see the query's progress lines (duration_ms) in this log"
            ),
        )

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        # Failed batches are counted by the stream manager, which sees every query (stream
        # computations run in sessions of their own, whose events this listener never hears).
        if event.exception:
            log.error("stream terminated id=%s error=%s", event.id, event.exception)


def query_watermark(event_time: Mapping[str, str] | None) -> float | None:
    """A progress event's watermark (epoch s); None for a query without one or before its
    first batch with rows (Spark reports the epoch then)."""
    text = (event_time or {}).get("watermark")
    if not text:
        return None
    seconds = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return seconds if seconds > 0 else None


def slow_input_advice(settings: Settings) -> dict[str, str]:
    """What to do when a query is slow to find its new input, by query name."""
    return {
        enrichment.QUERY_NAME: (
            f"the source asks every writer in {settings.lake.bronze}/_manifest for its next "
            "entries; each ingest process start adds a writer, and bronze retention "
            "(WORKBENCH__MAINTENANCE__BRONZE_RETENTION_DAYS, then `workbench maintain "
            "retention --layer bronze`) removes the writers whose files are all gone. If "
            "the object store is slow to answer, check its latency"
        ),
    }


def register_tables(spark: SparkSession, settings: Settings) -> None:
    """Name the Delta locations in the session catalog, shared with every Connect session.

    Spark Connect sessions are separate sessions of this driver; they share its catalog, not
    its temporary views, so the tables are registered as (external) catalog tables.
    """
    tables = {
        ("silver", "readings"): settings.lake.silver_readings,
        ("gold", averages.TABLE): settings.lake.gold(averages.TABLE),
        ("gold", alerts.TABLE): settings.lake.gold(alerts.TABLE),
    }
    for (database, table), path in tables.items():
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        location = path.replace("'", "\\'")
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {database}.{table} USING DELTA LOCATION '{location}'"
        )
    log.info("tables registered tables=%s", ",".join(f"{d}.{t}" for d, t in tables))


def build_engine_app(
    settings: Settings,
    manager: StreamManager,
    metrics: EngineMetrics,
    catalog: Catalog,
    computations: StreamComputations | None = None,
    queries: Computations | None = None,
) -> FastAPI:
    """The engine's HTTP API over a running stream manager (and its stream computations);
    every route but ``/health`` passes ``gate`` (:mod:`workbench.api.auth`)."""
    app = FastAPI(title="workbench engine", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    gate = Gate(catalog.identify, scrape_token=settings.auth.scrape_token)
    gate.install_docs(app, enabled=settings.auth.api_docs)
    app.include_router(build_user_router(catalog, gate))
    app.include_router(build_alert_router(catalog, gate))
    metrics.alerts_firing(catalog.firing_alerts_per_rule())
    metrics.active_streams.labels(metrics.pod).set_function(manager.active_count)
    app.include_router(build_stream_router(manager, gate))
    if queries is not None:
        app.include_router(
            build_query_router(
                queries.service,
                queries,
                gate,
                timeout_seconds=settings.engine.query_timeout_seconds,
            )
        )
        app.include_router(build_dashboard_router(queries, TileCache(queries), gate))
    if computations is not None:
        app.include_router(build_stream_computation_router(computations, gate))

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness for probes: the status word, nothing else."""
        return {"status": "ok"}

    @app.get("/status", dependencies=[gate.role("user")])
    def status() -> dict[str, Any]:
        return {
            "active_streams": manager.active_count(),
            "queries": [s.to_dict() for s in manager.status()],
        }

    @app.get("/metrics", dependencies=[gate.scraper()])
    def prometheus() -> Response:
        for query in manager.status():
            metrics.stream_status.labels(metrics.pod, query.name).set(int(query.active))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def run_engine(settings: Settings, *, stop: threading.Event | None = None) -> None:
    """Run the engine until SIGTERM/SIGINT (or until ``stop`` is set).

    Args:
        settings: the workbench settings.
        stop: an event to stop the engine from another thread (tests); signals set it too.
    """
    stop = stop or threading.Event()
    ensure_local_dirs(settings)
    spark = build_session(settings, app_name="workbench-engine", connect=True)
    # Installed after the session: pyspark replaces the SIGINT handler when it starts.
    _handle_signals(stop)
    catalog = Catalog(settings.catalog.url)
    metrics = EngineMetrics()
    manager = StreamManager(
        on_failure=lambda _name, _error: metrics.batch_failed(),
        on_terminal=lambda name, code: metrics.component_failed(f"stream:{name}", code),
    )
    maintenance = MaintenanceScheduler(
        spark, settings, catalog.list_devices, on_terminal=metrics.component_failed
    )
    server: uvicorn.Server | None = None
    try:
        spark.conf.set("spark.sql.streaming.stopTimeout", STOP_TIMEOUT)
        enrichment.ensure_silver_table(spark, settings)
        gold.ensure_gold_tables(spark, settings)
        register_tables(spark, settings)
        spark.streams.addListener(
            ProgressListener(metrics, slow_input_advice=slow_input_advice(settings))
        )
        checkpoints = settings.lake.checkpoints
        manager.register(
            enrichment.QUERY_NAME,
            lambda: enrichment.start_enrichment(
                spark, settings, catalog, metrics=metrics, failures=manager.failures
            ),
            lag=ManifestLag(settings, checkpoint_path(checkpoints, enrichment.CHECKPOINT), spark),
        )
        manager.register(
            gold.QUERY_NAME,
            lambda: gold.start_gold(
                spark, settings, catalog, metrics=metrics, failures=manager.failures
            ),
            lag=DeltaSourceLag(
                settings.lake.silver_readings,
                checkpoint_path(checkpoints, gold.QUERY_NAME),
                spark,
            ),
        )
        queries = Computations(
            QueryService(
                spark,
                catalog,
                max_limit=settings.engine.query_max_rows,
                observer=metrics.computation_executed,
            ),
            catalog,
        )
        computations = StreamComputations(spark, settings, catalog, manager, metrics=metrics)
        computations.register_all()
        manager.watch_schema(
            lambda: {d.ingestion_id: d.schema_version for d in catalog.list_datasets()},
            queries=[enrichment.QUERY_NAME],
            every_seconds=SCHEMA_WATCH_SECONDS,
        )
        manager.start_all()
        maintenance.start()
        server = uvicorn.Server(
            uvicorn.Config(
                build_engine_app(
                    settings,
                    manager,
                    metrics,
                    catalog,
                    computations,
                    queries,
                ),
                host=settings.engine.host,
                port=settings.engine.port,
                log_level="warning",
                lifespan="off",
            )
        )
        threading.Thread(target=server.run, name="engine-http", daemon=True).start()
        log.info(
            "engine ready http=http://%s:%s connect_url=%s",
            settings.engine.host,
            settings.engine.port,
            settings.engine.connect_url,
        )
        stop.wait()
    finally:
        log.info("engine stopping")
        if server is not None:
            server.should_exit = True
        maintenance.stop(timeout=STOP_TIMEOUT_SECONDS)
        manager.stop_all()
        catalog.close()
        spark.stop()
        log.info("engine stopped")


def _handle_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be installed from the main thread

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def main() -> None:
    """Entry point: settings from the environment, logging, then :func:`run_engine`."""
    settings = load_settings()
    configure_logging(settings.log_level)
    run_engine(settings)


if __name__ == "__main__":
    main()
