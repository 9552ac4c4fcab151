"""The ingest process: sources, bronze writer, metadata extraction, and its HTTP API.

Endpoints: ``POST /api/push/{source}`` (REST push, answers once the records are durable;
the source's own token, or an API token of a user), ``GET /health`` (open liveness: the status
word only, 503 while ``degraded`` or ``failed``), ``GET /api/health`` (the full report),
``GET /api/loss``, ``GET /metrics`` (Prometheus, scrape token), the source routes and the
metadata API (``/api/metadata/...``, see ``metadata_routes``). Every route but ``/health``
needs a token (:mod:`workbench.api.auth`). Errors answer ``{code, message, fields}`` with their
class's status (:mod:`workbench.api.http_errors`). No JVM is ever loaded here.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from workbench.api.auth import REFUSED, Gate, bearer_token
from workbench.api.http_errors import error_response, install_error_handlers
from workbench.api.loop_wakeup import waker_of
from workbench.api.metadata_routes import build_metadata_router
from workbench.api.source_routes import build_source_router
from workbench.api.user_routes import build_user_router
from workbench.catalog.extraction import MetadataExtractor
from workbench.catalog.records import LossRow
from workbench.catalog.store import Catalog
from workbench.connectors.registry import default_registry
from workbench.connectors.rest_push import push_answer
from workbench.core.errors import ForbiddenError, PayloadTooLargeError, UnauthorizedError
from workbench.core.settings import Settings, ensure_local_dirs
from workbench.ingest.service import IngestService, prepare_ingest_process
from workbench.ingest.spill import build_storage
from workbench.metrics.ingestor import IngestMetrics

log = logging.getLogger(__name__)

PUSH_THREADS = 16
"""Threads that take pushes (their token checks may wait for the catalog; parsing is bounded
by the cores)."""


def build_ingest_app(settings: Settings) -> FastAPI:
    """The ingest service as an ASGI app; starting it (lifespan) starts every source."""
    ensure_local_dirs(settings)
    catalog = Catalog(settings.catalog.url)
    metrics = IngestMetrics()
    extractor = MetadataExtractor(
        catalog,
        batch_size=settings.ingest.metadata_batch_size,
        batch_seconds=settings.ingest.metadata_batch_seconds,
        stale_seconds=settings.catalog.field_stale_seconds,
    )
    service = IngestService(
        settings,
        storage=build_storage(settings),
        metrics=metrics,
        registry=default_registry(),
        store=catalog,
        observer=extractor.observe,
    )
    service.register_defaults()

    # A push makes one call on this pool: the API-token check, the parse, the hand-over to the
    # bronze writer and the answer's encoding (each hop to a thread and back wakes the event
    # loop). Parsing a body is CPU work under the GIL: more bodies parsed at once than there
    # are cores only adds memory (their rows) and thread switching, never throughput, so the
    # parse takes one of ``parsing``'s slots; the token check waits outside them (it may wait
    # for SQLite's lock), and so does durability, so group commit still gathers every
    # sender's batch.
    pushers = ThreadPoolExecutor(max_workers=PUSH_THREADS, thread_name_prefix="push")
    parsing = threading.BoundedSemaphore(os.cpu_count() or 2)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        extractor.start()
        ledger_task = asyncio.create_task(
            _write_loss_periodically(service, catalog, settings.ingest.metadata_batch_seconds)
        )
        service.start()
        log.info(
            "ingest service started port=%s sources=%s",
            settings.ingest.port,
            sorted(service.sources.records()),
        )
        try:
            yield
        finally:
            clean = await run_in_threadpool(service.stop)
            ledger_task.cancel()
            await run_in_threadpool(_write_loss, service, catalog)
            extractor.stop()
            pushers.shutdown(wait=False)
            catalog.close()
            log.info("ingest service stopped flushed_all=%s", clean)

    app = FastAPI(
        title="workbench ingest",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    gate = Gate(catalog.identify, scrape_token=settings.auth.scrape_token)
    gate.install_docs(app, enabled=settings.auth.api_docs)
    app.state.service = service
    app.include_router(build_source_router(service.sources, gate))
    app.include_router(build_metadata_router(catalog, gate))
    app.include_router(build_user_router(catalog, gate))
    user = gate.role("user")

    @app.post("/api/push/{source}")
    async def push(source: str, request: Request) -> Response:
        found = service.sources.cached_push_source(source)
        if found is None:
            # In the thread pool: the catalog read can wait on SQLite's lock, never on the loop.
            found = await run_in_threadpool(service.sources.push_ingestion_id, source)
        iid, config = found
        check_user = False
        token = config.get("token")
        if token:
            # The whole header, exactly as configured; constant time: a byte-by-byte compare
            # tells an attacker how much matched.
            presented = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(presented, f"Bearer {token}".encode()):
                return error_response(
                    UnauthorizedError(
                        f"source {source!r} needs 'Authorization: Bearer <the source's token>'",
                        source=source,
                    )
                )
        else:
            # A source without a token of its own takes readings from users only. No token at
            # all is refused before the body is read; a token is looked up in the catalog with
            # the push itself, on every request (never cached: a revoked token stops at once).
            if bearer_token(request) is None:
                raise UnauthorizedError(REFUSED)
            check_user = True
        limit = int(config.get("max_body_bytes") or settings.ingest.max_body_bytes)
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            return await _refused_too_large(declared, limit, gate, request, check_user)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return await _refused_too_large(len(body), limit, gate, request, check_user)
        loop = asyncio.get_running_loop()
        durable: asyncio.Future[bool] = loop.create_future()
        waker = waker_of(loop)
        content_type = request.headers.get("content-type", "application/json")

        def on_durable() -> None:
            waker.resolve(durable)

        def accept(data: bytes) -> bytes:
            if check_user:
                _push_allowed(gate, request)
            with parsing:
                batch = service.push(source, data, content_type, on_durable, ingestion_id=iid)
                return push_answer(batch)  # sent only once the rows are durable

        answer = await loop.run_in_executor(pushers, accept, bytes(body))
        del body
        await durable
        return Response(answer, media_type="application/json")

    @app.get("/api/loss", dependencies=[user])
    async def loss() -> list[dict[str, Any]]:
        """Per-dataset loss accounting: stored counters plus those not yet written."""
        stored = {r.ingestion_id: r for r in await run_in_threadpool(catalog.loss_accounting)}
        for iid, counts in service.ledger.peek().items():
            stored[iid] = stored.get(iid, LossRow(iid)).adding(counts.to_dict())
        return [stored[iid].to_dict() for iid in sorted(stored)]

    @app.get("/health")
    async def health() -> JSONResponse:
        """Liveness for probes and load balancers: the status word, nothing else."""
        status = service.health()["status"]
        return JSONResponse({"status": status}, status_code=200 if status == "ok" else 503)

    @app.get("/api/health", dependencies=[user])
    async def health_report() -> JSONResponse:
        report = service.health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @app.get("/api/ready", dependencies=[user])
    async def ready() -> JSONResponse:
        """Ready once every running source is connected (a load balancer's question)."""
        sources = service.sources.health()
        waiting = [s.name for s in sources if s.running and not s.connected]
        return JSONResponse(
            {"ready": not waiting, "waiting_for": waiting}, status_code=503 if waiting else 200
        )

    @app.get("/metrics", dependencies=[gate.scraper()])
    async def prometheus() -> Response:
        service.health()  # refreshes the spill gauges
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _push_allowed(gate: Gate, request: Request) -> None:
    identity = gate.identity(request)
    if not identity.has_role("user"):
        raise ForbiddenError(
            "pushing readings to a source without a token of its own needs the role 'user'",
            needs="user",
        )


def _write_loss(service: IngestService, catalog: Catalog) -> None:
    pending = service.ledger.take()
    try:
        catalog.add_loss_counts(pending)
    except Exception:  # keep the counts for the next round
        log.exception("writing loss accounting failed datasets=%s", len(pending))
        service.ledger.give_back(pending)


async def _write_loss_periodically(service: IngestService, catalog: Catalog, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await run_in_threadpool(_write_loss, service, catalog)


async def _refused_too_large(
    size: int, limit: int, gate: Gate, request: Request, check_user: bool
) -> JSONResponse:
    """The answer to a body over the limit; a caller who may not push hears that first."""
    if check_user:
        await run_in_threadpool(_push_allowed, gate, request)
    return _too_large(size, limit)


def _too_large(size: int, limit: int) -> JSONResponse:
    return error_response(
        PayloadTooLargeError(
            f"body of {size} bytes exceeds the limit of {limit} bytes "
            "(settings: WORKBENCH__INGEST__MAX_BODY_BYTES); split it into smaller batches",
            size=size,
            limit=limit,
        )
    )


def run_ingest(settings: Settings) -> None:
    """Run the ingest service until SIGINT/SIGTERM, then flush and stop."""
    import uvicorn

    app = build_ingest_app(settings)
    prepare_ingest_process()
    uvicorn.run(
        app,
        host=settings.ingest.host,
        port=settings.ingest.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    from workbench.core.logs import configure_logging
    from workbench.core.settings import load_settings

    loaded = load_settings()
    configure_logging(loaded.log_level)
    run_ingest(loaded)
