"""Smoke test of ``workbench bench``: each benchmark runs briefly and prints the JSON contract.

No assertion on speed (benchmarks are not timed tests); only on the shape of the result, on
zero loss and on the progress bar going to stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
