"""What every benchmark shares: isolated settings, child processes, measurements, the result.

Benchmarks never import from ``tests/``: the few service helpers they need live here. Set
``WORKBENCH_BENCH_PROFILE=<dir>`` to attach ``py-spy`` to the ingest service while it runs at full
rate; the collapsed stacks land in that directory and a summary is logged.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pyarrow.dataset as ds

from workbench.bench.processes import peak_rss_mb
from workbench.client.credentials import auth_headers
from workbench.core.settings import Settings
from workbench.stack.demo_access import with_admin_token
from workbench.stack.process import child_env, stop_process, wait_healthy

log = logging.getLogger(__name__)

#: The checkout; children start here, so ``python -m workbench...`` runs this checkout's code.
ROOT = Path(__file__).resolve().parents[2]
PROFILE_ENV = "WORKBENCH_BENCH_PROFILE"
#: Inherited by a child, these would turn a process into a Spark Connect client.
_VERSIONED = ("paho-mqtt", "pyarrow", "fastapi", "uvicorn", "httpx", "prometheus-client", "orjson")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_settings(settings: Settings, home: Path, *, client_id: str) -> Settings:
    """``settings`` moved into ``home``: own lake, catalog, free loopback ports.

    Everything else (flush thresholds, buffers, time fields) stays as configured, so a benchmark
    measures the settings the user runs with. The benchmark calls the services as an admin of
    that fresh catalog (:func:`~workbench.stack.demo_access.with_admin_token`).
    """
    home.mkdir(parents=True, exist_ok=True)
    moved = settings.model_copy(
        update={
            "home": str(home),
            "lake": settings.lake.model_copy(update={"root": str(home / "lake")}),
            "catalog": settings.catalog.model_copy(update={"url": f"sqlite:///{home / 'cat.db'}"}),
            "mqtt": settings.mqtt.model_copy(
                update={"host": "127.0.0.1", "port": free_port(), "client_id": client_id}
            ),
            "ingest": settings.ingest.model_copy(update={"host": "127.0.0.1", "port": free_port()}),
            "log_level": "WARNING",
        }
    )
    return with_admin_token(moved, user="bench")


def spawn(
    args: list[str], *, env: dict[str, str] | None = None, log_path: Path
) -> subprocess.Popen[str]:
    """A Python child (``python -m ...``) with stdout piped and stderr to ``log_path``."""
    with open(log_path, "ab") as err:
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            cwd=ROOT,
        )


def last_json_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """Wait for ``proc`` and parse the last line it printed as JSON.

    Raises:
        RuntimeError: the child failed or printed no JSON.
    """
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {out[-2000:]}")
    return dict(json.loads(lines[-1]))


def follow(proc: subprocess.Popen[str], seconds: float, bar: Any, timeout: float) -> dict[str, Any]:
    """Advance ``bar`` by elapsed seconds while a load process runs; return its JSON result."""
    try:
        started, shown = time.monotonic(), 0
        while proc.poll() is None:
            time.sleep(0.25)
            elapsed = min(int(time.monotonic() - started), int(seconds))
            bar.update(elapsed - shown)
            shown = elapsed
        bar.update(int(seconds) - shown)
        return last_json_line(proc, timeout)
    finally:
        stop_process(proc)


def read_line(proc: subprocess.Popen[str], expected: str, timeout: float) -> None:
    """Block until ``proc`` prints ``expected`` (a readiness line).

    Raises:
        RuntimeError: the child exited or printed something else first.
    """
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == expected:
            return
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"{proc.args!r} did not print {expected!r} (exit {proc.poll()})")


class IngestService:
    """``python -m workbench ingest`` as a child process, optionally profiled by py-spy.

    Args:
        settings: isolated settings (see :func:`isolated_settings`).
        profile_name: file stem of the py-spy output when profiling is on.
    """

    def __init__(self, settings: Settings, *, profile_name: str) -> None:
        self.settings = settings
        self.url = f"http://{settings.ingest.host}:{settings.ingest.port}"
        self.log = Path(settings.home) / "ingest.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._profile_name = profile_name
        self._profiler: subprocess.Popen[bytes] | None = None
        self.profile_path: Path | None = None

    def start(self, *, need_mqtt: bool, timeout: float = 60.0) -> None:
        """Start and wait until healthy (and subscribed when ``need_mqtt``).

        Raises:
            ServiceUnavailableError: the service exited or did not get healthy in time.
        """
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workbench", "ingest"],
                env=child_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

        def subscribed(health: Any) -> bool:
            mqtt = [s for s in health["sources"] if s["type"] == "mqtt"]
            return not need_mqtt or all(s["connected"] for s in mqtt)

        wait_healthy(
            f"{self.url}/api/health",
            self.proc,
            timeout=timeout,
            what="ingest",
            ready=subscribed,
            log_path=self.log,
            headers=auth_headers(self.settings),
        )
        self._start_profiler()

    def _start_profiler(self) -> None:
        target = os.environ.get(PROFILE_ENV)
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not target or self.proc is None or not Path(spy).exists():
            if target:
                log.warning("%s set but py-spy is not installed; not profiling", PROFILE_ENV)
            return
        Path(target).mkdir(parents=True, exist_ok=True)
        self.profile_path = Path(target) / f"{self._profile_name}.collapsed"
        self._profiler = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(self.proc.pid),
                "--rate",
                "250",
                "--threads",
                "--format",
                "raw",
                "--output",
                str(self.profile_path),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(Path(self.settings.home) / "py-spy.log", "ab"),  # noqa: SIM115
        )
        time.sleep(1.0)  # py-spy needs a moment to attach

    def metric(self, name: str) -> float:
        """Sum of every sample of metric ``name`` on ``/metrics`` (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5, headers=auth_headers(self.settings)).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def peak_rss_mb(self) -> float:
        """The service's peak resident set so far (``VmHWM``), in MB."""
        assert self.proc is not None
        return peak_rss_mb(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM (flush and exit), then collect the profile if one was recorded."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._profiler is not None:
            try:
                self._profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._profiler.send_signal(signal.SIGINT)
                self._profiler.wait(timeout=10)
            if self.profile_path and self.profile_path.exists():
                log.warning(
                    "profile %s\n%s", self.profile_path, summarize_profile(self.profile_path)
                )


def bronze_counts(lake_root: str) -> tuple[int, int, float]:
    """``(rows, distinct message ids, newest file mtime)`` of the bronze layer."""
    root = Path(lake_root) / "bronze"
    files = [p for p in root.rglob("*.parquet") if not p.name.startswith(".")]
    if not files:
        return 0, 0, 0.0
    table = ds.dataset([str(p) for p in files], format="parquet").to_table(columns=["message_id"])
    distinct = pc.count_distinct(table["message_id"]).as_py()
    return table.num_rows, int(distinct), max(p.stat().st_mtime for p in files)


def summarize_profile(path: Path, top: int = 18) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[frames[0]] += n
        own[_short(frames[-1])] += n
        for name in {_short(f) for f in frames[1:]}:
            inclusive[name] += n
    if not total:
        return "(no samples)"

    def table(counter: collections.Counter[str]) -> str:
        return "\n".join(f"  {100 * n / total:5.1f}%  {k}" for k, n in counter.most_common(top))

    return (
        f"samples={total}\nby thread:\n{table(threads)}\nself:\n{table(own)}\n"
        f"inclusive:\n{table(inclusive)}"
    )


def _short(frame: str) -> str:
    # "fn (path/to/module.py:123)" -> "fn (module.py)"
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name


def machine() -> dict[str, Any]:
    """Cores, RAM and CPU model of this machine."""
    ram_kb = 0
    model = platform.processor()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "ram_gb": round(ram_kb / 1024**2, 1), "cpu": model}


def versions(**extra: str) -> dict[str, str]:
    """Versions of Python and of the libraries on the measured path."""
    out = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist.split("-")[0]] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    out.update(extra)
    return out


def mosquitto_version() -> str:
    """``mosquitto -h``'s version, or ``unknown``."""
    from workbench.stack.broker import mosquitto_binary

    try:
        first = subprocess.run(
            [mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=5
        ).stdout.splitlines()[0]
        return first.split()[-1]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def result(
    name: str,
    *,
    figure: float,
    unit: str,
    baseline: float,
    lost: int,
    peak_rss_mb: float,
    params: dict[str, Any],
    details: dict[str, Any],
    extra_versions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The one JSON object a benchmark prints (see ``benchmarks/README.md``)."""
    return {
        "name": name,
        "figure": round(figure, 1),
        "unit": unit,
        "baseline": round(baseline, 1),
        "ratio": round(figure / baseline, 3) if baseline else None,
        "lost": lost,
        "peak_rss_mb": peak_rss_mb,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": versions(**(extra_versions or {})),
        "params": params,
        "details": details,
    }
