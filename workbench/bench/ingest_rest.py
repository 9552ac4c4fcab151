"""``workbench bench ingest-rest``: NDJSON batches of 1,000 records into durable bronze.

The same client process (:mod:`workbench.bench.rest_client`, ``SENDERS`` keep-alive threads,
the same batches and token header) posts for ``seconds`` to three servers in turn, each on the
same server stack (uvicorn, one worker, loopback):

1. a trivial endpoint that only reads the body (:mod:`workbench.bench.echo_server`): the
   ceiling of the client and the HTTP layer on this machine, ``http_ceiling``;
2. a minimal durable endpoint (:mod:`workbench.bench.durable_server`): orjson parse of every
   line, a pyarrow table, one Parquet file per request, fsync, then the answer. What a
   hand-written endpoint that durably accepts the same requests costs: the ``baseline``;
3. the ingest service's ``POST /api/push/http``, which answers only once the records are
   durable in bronze: the ``figure``.

``figure``, ``baseline`` and ``http_ceiling`` are records answered per second; ``ratio`` =
figure / baseline. ``lost`` = records the ingest service answered − distinct record ids in
bronze; ``details.baseline_rows_written`` (rows in the durable endpoint's files) must equal
``details.baseline_records`` (records it answered), or the baseline did not do its work.
Targets (``details.targets``): ratio ≥ 0.8 and figure ≥ 50,000 records/s, with nothing lost.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.dataset as ds
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
TARGET_RATIO = 0.8
TARGET_RATE = 50_000.0


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


def _wait_ready(port: int, server: subprocess.Popen[str], what: str) -> None:
    """Until the server answers a GET (which neither server counts as a request to write)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def _bare_server(
    module: str, extra: list[str], home: Path, seconds: float, bar: tqdm, token: SecretStr | None
) -> dict[str, Any]:
    """Serve ``python -m <module> --port P <extra>`` and run the client against it."""
    port = free_port()
    name = module.rsplit(".", 1)[-1]
    server = spawn(["-m", module, "--port", str(port), *extra], log_path=home / f"{name}.log")
    try:
        _wait_ready(port, server, name)
        # The same header goes to every server: equal requests, only the server differs.
        return _post_for(f"http://127.0.0.1:{port}/push", seconds, home, bar, token)
    finally:
        stop_process(server)


def _parquet_rows(root: Path) -> tuple[int, int]:
    """``(rows, files)`` of the visible Parquet files under ``root``."""
    files = [p for p in root.glob("*.parquet") if not p.name.startswith(".")]
    if not files:
        return 0, 0
    return ds.dataset([str(p) for p in files], format="parquet").count_rows(), len(files)


def _rate(sent: dict[str, Any]) -> float:
    return float(sent["records"]) / max(sent["last"] - sent["first"], 1e-6)


def run(settings: Settings, *, seconds: float = 20.0) -> dict[str, Any]:
    """Run the ceiling, the baseline and the ingest half; return the result object."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wb-bench-rest-") as tmp:
        home = Path(tmp)
        with tqdm(total=int(seconds) * 3, unit="s", file=sys.stderr) as bar:
            bench = isolated_settings(settings, home / "ingest", client_id="bench-ingest-rest")
            token = bench.auth.token
            bar.set_description("ceiling: trivial endpoint")
            ceiling = _bare_server("workbench.bench.echo_server", [], home, seconds, bar, token)
            bar.set_description("baseline: minimal durable endpoint")
            durable_root = home / "durable"
            base = _bare_server(
                "workbench.bench.durable_server",
                ["--root", str(durable_root)],
                home,
                seconds,
                bar,
                token,
            )
            base_rows, base_files = _parquet_rows(durable_root)
            service = IngestService(bench, profile_name="ingest-rest")
            try:
                service.start(need_mqtt=False)
                bar.set_description("ingest service")
                sent = _post_for(f"{service.url}/api/push/http", seconds, home, bar, token)
                peak = service.peak_rss_mb()
            finally:
                service.stop()
            rows, distinct, _newest = bronze_counts(bench.lake.root)
    figure, baseline, http_ceiling = _rate(sent), _rate(base), _rate(ceiling)
    lost = sent["records"] - distinct
    ratio = figure / baseline if baseline else 0.0
    out = result(
        "ingest-rest",
        figure=figure,
        unit="records/s",
        baseline=baseline,
        lost=lost,
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
            "ceiling_records": ceiling["records"],
            "ceiling_errors": ceiling["errors"],
            "baseline_records": base["records"],
            "baseline_errors": base["errors"],
            "baseline_rows_written": base_rows,
            "baseline_files": base_files,
            "records": sent["records"],
            "errors": sent["errors"],
            "first_errors": sent["first_errors"],
            "bronze_rows": rows,
            "duplicates": rows - distinct,
            "ratio_to_ceiling": round(figure / http_ceiling, 3) if http_ceiling else None,
            # The 2 cores are shared; a high load average means other work competed.
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "targets": {
                "ratio": TARGET_RATIO,
                "records_per_s": TARGET_RATE,
                "lost": 0,
                "met": ratio >= TARGET_RATIO
                and figure >= TARGET_RATE
                and lost == 0
                and base_rows == base["records"],
            },
        },
    )
    out["http_ceiling"] = round(http_ceiling, 1)
    return out
