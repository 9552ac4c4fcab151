"""``workbench bench ingest-rest``: NDJSON batches of 1,000 records into durable bronze.

The same client process (:mod:`workbench.bench.rest_client`, ``SENDERS`` keep-alive threads) posts
for ``seconds`` first to a trivial endpoint on the same server stack that only reads the body
(:mod:`workbench.bench.echo_server`: the client/HTTP ceiling, the baseline), then to the ingest
service's ``POST /api/push/http``, which answers only once the records are durable.

``figure`` = records answered by the ingest service per second; ``lost`` = records answered −
distinct record ids in bronze.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from tqdm import tqdm

from workbench.bench.harness import (
    IngestService,
    bronze_counts,
    follow,
    free_port,
    isolated_settings,
    result,
    spawn,
)
from workbench.bench.rest_client import TOKEN_ENV
from workbench.core.settings import Settings
from workbench.stack.process import stop_process

log = logging.getLogger(__name__)

SENDERS = 8
BATCH = 1000


def _post_for(
    url: str, seconds: float, home: Path, bar: tqdm, token: SecretStr | None
) -> dict[str, Any]:
    """Run the client against ``url`` for ``seconds`` with ``token``, advancing ``bar``."""
    proc = spawn(
        [
            "-m",
            "workbench.bench.rest_client",
            "--url",
            url,
            "--seconds",
            str(seconds),
            "--senders",
            str(SENDERS),
            "--batch",
            str(BATCH),
        ],
        log_path=home / "rest_client.log",
        env={**os.environ, TOKEN_ENV: token.get_secret_value()} if token else None,
    )
    return follow(proc, seconds, bar, 60)


def _baseline(home: Path, seconds: float, bar: tqdm, token: SecretStr | None) -> dict[str, Any]:
    port = free_port()
    server = spawn(
        ["-m", "workbench.bench.echo_server", "--port", str(port)], log_path=home / "echo.log"
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/", content=b"{}", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("echo server did not start") from None
                time.sleep(0.1)
        bar.set_description("baseline: trivial endpoint")
        # The same header goes to the baseline: equal requests, only the server differs.
        return _post_for(f"http://127.0.0.1:{port}/push", seconds, home, bar, token)
    finally:
        stop_process(server)


def run(settings: Settings, *, seconds: float = 20.0) -> dict[str, Any]:
    """Run the baseline and the ingest half; return the result object."""
    with tempfile.TemporaryDirectory(prefix="wb-bench-rest-") as tmp:
        home = Path(tmp)
        with tqdm(total=int(seconds) * 2, unit="s", file=sys.stderr) as bar:
            bench = isolated_settings(settings, home / "ingest", client_id="bench-ingest-rest")
            base = _baseline(home, seconds, bar, bench.auth.token)
            service = IngestService(bench, profile_name="ingest-rest")
            try:
                service.start(need_mqtt=False)
                bar.set_description("ingest service")
                sent = _post_for(
                    f"{service.url}/api/push/http", seconds, home, bar, bench.auth.token
                )
                peak = service.peak_rss_mb()
            finally:
                service.stop()
            rows, distinct, _newest = bronze_counts(bench.lake.root)
    baseline = base["records"] / max(base["last"] - base["first"], 1e-6)
    figure = sent["records"] / max(sent["last"] - sent["first"], 1e-6)
    return result(
        "ingest-rest",
        figure=figure,
        unit="records/s",
        baseline=baseline,
        lost=sent["records"] - distinct,
        peak_rss_mb=peak,
        params={
            "seconds": seconds,
            "senders": SENDERS,
            "batch": BATCH,
            "record_bytes": "~150",
            "flush_seconds": bench.ingest.flush_seconds,
            "flush_rows": bench.ingest.flush_rows,
        },
        details={
            "baseline_records": base["records"],
            "baseline_errors": base["errors"],
            "records": sent["records"],
            "errors": sent["errors"],
            "first_errors": sent["first_errors"],
            "bronze_rows": rows,
            "duplicates": rows - distinct,
        },
    )
