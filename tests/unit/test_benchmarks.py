"""Smoke test of ``workbench bench``: each benchmark runs briefly and prints the JSON contract.

No assertion on speed (benchmarks are not timed tests); only on the shape of the result, on
zero loss and on the progress bar going to stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"name", "figure", "unit", "baseline", "ratio", "lost", "machine", "versions", "params"}


@pytest.mark.parametrize("name", ["ingest-mqtt", "ingest-rest"])
def test_benchmark_prints_its_result_as_the_last_stdout_line(name: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "HOME": str(tmp_path)}
    env["WORKBENCH__HOME"] = str(tmp_path / "home")
    env["WORKBENCH__CONFIG"] = str(tmp_path / "none.toml")
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "bench", name, "--seconds", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) >= KEYS
    assert result["name"] == name
    assert result["lost"] == 0
    assert result["figure"] > 0 and result["baseline"] > 0
    assert result["ratio"] == pytest.approx(result["figure"] / result["baseline"], rel=0.01)
    assert {"cores", "ram_gb"} <= set(result["machine"])
    assert {"python", "paho", "pyarrow"} <= set(result["versions"])
    assert 0 < result["peak_rss_mb"] < 2000
    assert "%|" in done.stderr  # the tqdm bar
    if name == "ingest-rest":
        _check_rest_baselines(result)


def _check_rest_baselines(result: dict[str, Any]) -> None:
    """The ceiling is reported beside the durable baseline, which wrote what it answered."""
    details = result["details"]
    assert result["http_ceiling"] > 0
    assert details["baseline_records"] > 0 and details["baseline_errors"] == 0
    assert details["baseline_rows_written"] == details["baseline_records"]
    assert details["baseline_files"] == details["baseline_records"] // result["params"]["batch"]
    targets = details["targets"]
    assert targets["ratio"] == 0.8 and targets["records_per_s"] == 50_000
    assert isinstance(targets["met"], bool)


def test_durable_endpoint_answers_once_its_records_are_in_parquet(tmp_path: Path) -> None:
    import httpx
    import pyarrow.parquet as pq

    from workbench.bench.harness import free_port

    port = free_port()
    root = tmp_path / "files"
    module = "workbench.bench.durable_server"
    server = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), "--root", str(root)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(url, timeout=1).json() == {"status": "ok"}
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        assert list(root.iterdir()) == []  # the probe wrote nothing
        with httpx.Client(timeout=10) as client:
            first = client.post(url, content=b'{"a": 1}\n{"a": 2}\n\n{"a": 3}\n')
            second = client.post(url, content=b'{"b": "\xc3\xa9"}')
            resent = client.post(url, content=b'{"a": 1}\n{"a": 2}\n\n{"a": 3}\n')
            refused = client.post(url, content=b'{"c": 1}\nnot json')
            empty = client.post(url, content=b"")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert [r.json() for r in (first, second, resent, empty)] == [
        {"accepted": 3},
        {"accepted": 1},
        {"accepted": 3},
        {"accepted": 0},
    ]
    assert refused.status_code == 400
    files = sorted(root.iterdir())
    assert len(files) == 3 and all(f.suffix == ".parquet" for f in files)  # no temp file left
    rows = [pq.read_table(f).to_pylist() for f in files]
    assert sorted(len(r) for r in rows) == [1, 3, 3]
    by_payload = {tuple(row["payload"] for row in r): r for r in rows}
    assert set(by_payload) == {('{"a": 1}', '{"a": 2}', '{"a": 3}'), ('{"b": "é"}',)}
    three = [r for r in rows if len(r) == 3]
    # A resent body gets the same record ids; each record's id is its own.
    assert [row["message_id"] for row in three[0]] == [row["message_id"] for row in three[1]]
    assert len({row["message_id"] for row in three[0]}) == 3
    assert all(row["received_at"] is not None for r in rows for row in r)


def test_latency_batch_profile_reads_the_engine_log(tmp_path: Path) -> None:
    from workbench.bench.sensor_latency import batch_profile

    prefix = "2026-11-26 15:00:00,000 INFO workbench.api.engine_app stream progress"
    lines = [
        f'{prefix} query=enrichment batch_id=1 rows=2000 duration_ms={{"addBatch": 1500, '
        '"triggerExecution": 2000}',
        f'{prefix} query=enrichment batch_id=2 rows=0 duration_ms={{"triggerExecution": 300}}',
        f'{prefix} query=enrichment batch_id=3 rows=4000 duration_ms={{"addBatch": 2500, '
        '"triggerExecution": 3000}',
        f'{prefix} query=gold batch_id=1 rows=6000 duration_ms={{"triggerExecution": 4000}}',
        "2026-11-26 15:00:00,000 INFO workbench.enrichment.batch enrichment batch batch_id=1 "
        "committed=True written=2000 dropped=0 held=0 released=0 steps={'write': 1.25, "
        "'filter': 0.05}",
        "2026-11-26 15:00:00,000 INFO workbench.enrichment.batch enrichment batch batch_id=2 "
        "committed=False written=0 dropped=0 held=0 released=0 steps={'write': 9.0}",
        "2026-11-26 15:00:00,000 INFO workbench.gold.gold_stream gold batch batch_id=1 "
        "written={'sensor_averages': 40} late=0 steps={'partials': 0.5, 'averages': 2.0}",
        "not a log line",
    ]
    log = tmp_path / "engine.log"
    log.write_text("\n".join(lines))
    profile = batch_profile(log)
    enrichment = profile["enrichment"]
    assert enrichment["batches"] == 2 and enrichment["rows_p50"] == 3000  # the empty one is out
    assert enrichment["seconds"]["triggerExecution"] == {"p50": 2.5, "p95": 3.0}
    assert profile["gold"]["seconds"]["triggerExecution"] == {"p50": 4.0, "p95": 4.0}
    assert profile["enrichment_steps"] == {  # committed batches only
        "write": {"p50": 1.25, "p95": 1.25},
        "filter": {"p50": 0.05, "p95": 0.05},
    }
    assert profile["gold_steps"] == {
        "partials": {"p50": 0.5, "p95": 0.5},
        "averages": {"p50": 2.0, "p95": 2.0},
    }
    assert batch_profile(tmp_path / "missing.log") == {}


def test_every_listed_benchmark_has_a_run_function_and_no_other_name_does() -> None:
    from workbench.bench import BENCHMARKS, benchmark

    assert all(callable(benchmark(name)) for name in BENCHMARKS)
    with pytest.raises(KeyError, match="choose one of ingest-mqtt"):
        benchmark("enrich_data")
