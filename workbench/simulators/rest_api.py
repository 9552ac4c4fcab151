"""The REST API simulator: what the REST poller connector is tested against.

``GET /api/<kind>`` (temperature, air-quality, traffic, parking, energy) returns the newest
readings wrapped as ``{"status": "ok", "timestamp": ..., "count": n, "data": [...]}``. Each kind
produces one reading per sensor every ``interval_seconds`` (generated lazily when asked, so an
idle server does no work). Conditional requests: ``ETag``/``If-None-Match`` and
``Last-Modified``/``If-Modified-Since`` give 304 when nothing is new (``If-None-Match`` wins when
both are sent; ``Last-Modified`` has one-second resolution, so faster intervals need the ETag).
Query: ``limit`` (newest N, default 100, at most ``rest_history``) and ``sensor_id``. With
``rest_token`` set every ``/api`` route needs ``Authorization: Bearer <token>`` (401
otherwise); ``/health`` is open.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
import time
from collections import deque
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from workbench.core.settings import Settings
from workbench.simulators.kinds import KindRegistry, SensorKind, build_rest_kinds, iso_z, sensor_ids

log = logging.getLogger(__name__)

MAX_CATCH_UP_ROUNDS = 50
"""After a long idle period only this many rounds are generated (older ones are not served)."""


class ReadingFeed:
    """Readings of one kind, produced one round per interval, the newest ``history`` kept.

    Args:
        kind: the sensor kind.
        sensors: how many sensors.
        interval_seconds: one round every this many seconds.
        history: readings kept.
        seed: seed of the readings' noise.
    """

    def __init__(
        self, kind: SensorKind, *, sensors: int, interval_seconds: float, history: int, seed: int
    ) -> None:
        self.kind = kind
        self.ids = sensor_ids(sensors, kind.id_prefix)
        self.interval = interval_seconds
        self.readings: deque[dict[str, Any]] = deque(maxlen=history)
        self.rounds = 0
        self.last_modified = datetime.now(UTC)
        self._rng = random.Random(seed)
        self._epoch = time.time()
        self._mutex = threading.Lock()
        self._produce(self._epoch)

    def refresh(self) -> None:
        """Produce the rounds that are due by now."""
        with self._mutex:
            due = int((time.time() - self._epoch) / self.interval) + 1
            first = max(self.rounds, due - MAX_CATCH_UP_ROUNDS)
            for number in range(first, due):
                self._produce(self._epoch + number * self.interval)
            self.rounds = max(self.rounds, due)

    def _produce(self, at: float) -> None:
        now = datetime.fromtimestamp(at, UTC)
        for index, sensor in enumerate(self.ids):
            self.readings.append(self.kind.make_reading(index, sensor, now, self._rng))
        self.rounds += 1
        self.last_modified = now

    def select(self, limit: int, sensor_id: str | None) -> tuple[list[dict[str, Any]], int]:
        """The newest ``limit`` readings (oldest first) and the round they are current at."""
        with self._mutex:
            rows = [
                r for r in self.readings if sensor_id is None or r.get("sensor_id") == sensor_id
            ]
            return rows[-limit:], self.rounds


def _not_modified(request: Request, etag: str, last_modified: datetime) -> bool:
    match = request.headers.get("if-none-match")
    if match is not None:
        return etag in [tag.strip() for tag in match.split(",")] or match.strip() == "*"
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return last_modified.replace(microsecond=0) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


def build_rest_api(settings: Settings, kinds: KindRegistry | None = None) -> FastAPI:
    """The simulator app; one :class:`ReadingFeed` per kind, owned by the app."""
    sim = settings.simulator
    registry = kinds or build_rest_kinds()
    feeds = {
        name: ReadingFeed(
            registry.get(name),
            sensors=sim.sensors,
            interval_seconds=sim.interval_seconds,
            history=sim.rest_history,
            seed=sim.seed,
        )
        for name in registry.names()
    }
    token = sim.rest_token.get_secret_value() if sim.rest_token is not None else None

    def authorize(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            return
        expected = f"Bearer {token}".encode()
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="workbench REST API simulator", docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api", dependencies=[Depends(authorize)])
    def list_kinds() -> dict[str, Any]:
        return {"status": "ok", "kinds": registry.names()}

    @app.get("/api/{kind}", dependencies=[Depends(authorize)])
    def readings(
        kind: str,
        request: Request,
        limit: Annotated[int, Query(ge=1)] = 100,
        sensor_id: str | None = None,
    ) -> Response:
        name = kind.replace("_", "-")
        if name not in feeds:
            known = ", ".join(feeds)
            raise HTTPException(404, f"unknown kind {kind!r}; known: {known}")
        feed = feeds[name]
        feed.refresh()
        rows, current = feed.select(min(limit, sim.rest_history), sensor_id)
        variant = hashlib.sha1(f"{limit}|{sensor_id}".encode()).hexdigest()[:8]
        etag = f'"{name}-{current}-{variant}"'
        headers = {
            "ETag": etag,
            "Last-Modified": format_datetime(feed.last_modified, usegmt=True),
            "Cache-Control": "no-cache",
        }
        if _not_modified(request, etag, feed.last_modified):
            return Response(status_code=304, headers=headers)
        body = {
            "status": "ok",
            "timestamp": iso_z(datetime.now(UTC)),
            "count": len(rows),
            "data": rows,
        }
        return JSONResponse(body, headers=headers)

    return app


def build_rest_api_server(settings: Settings, port: int | None = None) -> uvicorn.Server:
    """A uvicorn server for the simulator (``run()`` it; set ``should_exit`` to stop)."""
    sim = settings.simulator
    config = uvicorn.Config(
        build_rest_api(settings),
        host=sim.rest_host,
        port=port or sim.rest_port,
        log_level="warning",
        access_log=False,
    )
    return uvicorn.Server(config)


def run_rest_api(settings: Settings, port: int | None = None) -> None:
    """Serve the REST API simulator until SIGINT/SIGTERM."""
    server = build_rest_api_server(settings, port)
    log.info(
        "REST API simulator listening url=http://%s:%s/api auth=%s",
        settings.simulator.rest_host,
        server.config.port,
        "bearer" if settings.simulator.rest_token else "none",
    )
    server.run()
