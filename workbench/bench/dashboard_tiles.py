"""``workbench bench tiles``: dashboards refreshing through the engine's tile cache while gold
changes, against the same refreshes run straight over Spark Connect, in the same run.

A fresh stack on free loopback ports in a temporary directory: Mosquitto, ``workbench ingest``,
``workbench engine`` (default settings) and the Voila dashboard app, with the default MQTT
source's dataset labelled ``public`` as the demo labels it
(:func:`~workbench.stack.demo_access.demo_devices`). The rate publisher
(:mod:`workbench.bench.rate_publisher`) sends ``rate`` readings a second from 50 sensors for the
whole run, so the gold stream commits a new ``gold/sensor_averages`` version at every trigger.

The dashboard (:data:`DASHBOARD`) has four tiles of seeded computations, all over gold and all
readable by a viewer (a gauge, a bar chart, a time series, a table): a refresh that brings new
data then follows exactly a new gold version. (The demo dashboard mixes silver tiles, which
change at every silver commit, with a tile restricted for viewers.)

**Clients.** ``clients`` catalog users, alternately ``viewer`` and ``user`` (so the cache keeps
two clearances per tile), each with a token of its own and each a process of its own
(``python -m workbench.bench.dashboard_tiles --client``), as every Voila visitor has a kernel
of its own.
Processes, not threads: twenty client threads in one interpreter would queue behind one GIL
while they decode answers and build frames, and that wait would be counted as the engine's. A
refresh is what the dashboard does (:func:`workbench.widgets.dashboard.build_dashboard`): the
four tiles fetched at once, one worker thread per tile, every answer made a pandas frame; it is
timed from the first request to the last frame.

**Rounds** alternate the two paths, so noise on the machine hits both. In a cache phase every
client refreshes :data:`REFRESHES` times, starting one every :data:`INTERVAL` seconds (the
clients evenly staggered over the interval), with ``GET /api/tiles/{id}/data`` and its own token
(:class:`~workbench.client.engine_client.EngineClient`). In the baseline phase it runs the same
four tiles' SQL as many times, at the same pace, over a Spark Connect session of its own
(:func:`~workbench.spark.session.connect_session`), under the query service's row limit. A
refresh that falls behind the pace starts as soon as the one before ended. One warm-up refresh
of each path comes first and is left out.

A cache phase starts no sooner than the cache's 15 s floor after the previous one ended, so it
opens on a gold version the cache has not checked yet. A cache refresh is **fresh** when one of
its answers carries a gold version newer than any its client saw before (the answer's
``versions``: the cache ran the tile again, for this client or just before it for another, and
the client waited for that run); otherwise it is **warm**. Between two checks a warm answer can
be up to 15 s behind gold: ``details.staleness_s`` is how long after its gold commit each new
version reached a client.

**Engine CPU**: utime + stime of the engine's process tree (the service and its JVM), from
``/proc``, summed over the cache phases and over the baseline phases; the streams run in both,
so their share is measured too, for :data:`IDLE_SECONDS` with no client.

**Voila**: the dashboard app served as ``workbench up`` serves it (its own directory, no secret,
pre-heated kernels), opened in a fresh headless Chromium with a viewer's sign-in link, right after
one more (unmeasured) cache refresh of every client, so the cache holds the current gold version
as it does for a dashboard others are watching. ``first_tile_s`` runs from the start of the
navigation until a plotly figure inside a tile is visible; ``voila_kernel_rss_mb`` is the
resident set of the kernel that served the page (the one the page's config names) once every
tile is drawn. ``details.voila`` adds the browser's navigation timings and the CPU seconds the
kernel and Chromium spent meanwhile.

``figure`` = ``warm_p95_s``; ``baseline`` = ``baseline_p95_s``; ``ratio`` = figure / baseline
(lower is better); ``lost`` = refreshes of either path missing a tile or a tile's rows. Targets:
warm p95 ≤ 0.1 s, fresh p95 ≤ 0.5 s, ratio ≤ 0.2, first tile ≤ 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from deltalake import DeltaTable
from pydantic import SecretStr
from tqdm import tqdm

from workbench.analytics.tile_cache import MIN_REFRESH_SECONDS
from workbench.bench.delta_watch import percentile
from workbench.bench.harness import ROOT, IngestService, free_port, mosquitto_version, result
from workbench.bench.processes import (
    cpu_seconds,
    own_cpu_seconds,
    process_tree,
    rss_mb,
    sched_seconds,
)
from workbench.bench.sensor_latency import EngineService, PublisherProcess, bench_settings
from workbench.catalog.records import Tile
from workbench.catalog.store import Catalog
from workbench.catalog.users import Role
from workbench.client.engine_client import DEFAULT_LIMIT, EngineClient
from workbench.core.errors import ConfigError, ServiceUnavailableError
from workbench.core.settings import Settings, ensure_local_dirs, load_settings
from workbench.stack.broker import start_broker, wait_for_port
from workbench.stack.demo_access import demo_devices
from workbench.stack.process import child_env, stop_process
from workbench.stack.up import DASHBOARD as DASHBOARD_APP
from workbench.stack.up import without_secrets

TARGETS = {"warm_p95_s": 0.1, "fresh_p95_s": 0.5, "ratio": 0.2, "first_tile_s": 3.0}
#: The benchmark's dashboard, and its tiles: (title, computation, viz, config, x, y, w, h).
DASHBOARD = "tiles-bench"
TILES: tuple[tuple[str, str, str, dict[str, Any], int, int, int, int], ...] = (
    (
        "Current temperature",
        "current_temperature",
        "gauge",
        {"value": "temperature", "min": -10, "max": 45},
        0,
        0,
        4,
        3,
    ),
    (
        "Temperature spread",
        "temperature_spread",
        "bar",
        {"x": "sensor_id", "y": "spread"},
        4,
        0,
        8,
        3,
    ),
    (
        "Average temperature per sensor",
        "sensor_averages",
        "timeseries",
        {"x": "window_start", "y": "avg_value", "color": "sensor_id"},
        0,
        3,
        12,
        4,
    ),
    ("Latest readings", "latest_readings", "table", {}, 0, 7, 12, 4),
)
GOLD_TABLE = "gold.sensor_averages"
#: Refreshes per client and phase, and seconds between the starts of two of them.
REFRESHES = 3
INTERVAL = 2.0
WARMUP_REFRESHES = 1
#: Seconds the engine's CPU is measured with no client, to tell the streams' share.
IDLE_SECONDS = 10.0
#: Readings a second: 50 sensors reporting once a second (the engine's CPU hardly depends on it).
RATE = 50
CLIENTS = 20
ROUNDS = 2
#: How long the publisher may run: it is stopped when the run ends.
PUBLISH_SECONDS = 3600.0
GOLD_TIMEOUT = 240.0
CLIENT_START_TIMEOUT = 180.0
#: Debian's Chromium, with the flags the browser tests use too: without the background-networking
#: ones it keeps trying to reach the internet, which this machine refuses.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: A plotly figure drawn inside a tile card (:mod:`workbench.widgets.tile`).
PLOTTED_TILE = ".workbench-tile .js-plotly-plot .main-svg"
_CONFIG_JS = "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
_NAVIGATION_JS = (
    "() => { const n = performance.getEntriesByType('navigation')[0];"
    " return {first_byte: n.responseStart, document: n.responseEnd,"
    " dom_content_loaded: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }"
)
_VOILA_POOL = 2  # voila_apps/dashboard/voila.json: default_pool_size


# -- the client process ---------------------------------------------------------------------


@dataclass(frozen=True)
class TileSpec:
    """A tile as a client needs it: its id (cache path) and its computation's SQL (baseline)."""

    id: int
    sql: str


def _cache_fetch(client: EngineClient, tile: TileSpec) -> dict[str, Any]:
    answer = client.tile_data(tile.id)
    frame = answer.to_pandas()
    versions = answer.extras.get("versions") or {}
    return {
        "rows": len(frame),
        "version": versions.get(GOLD_TABLE),
        "from_cache": bool(answer.extras.get("from_cache")),
    }


def _connect_fetch(spark: Any, tile: TileSpec) -> dict[str, Any]:
    frame = spark.sql(tile.sql).limit(DEFAULT_LIMIT).toPandas()
    return {"rows": len(frame)}


class RefreshClient:
    """One dashboard visitor: its engine client (its own token) and its Spark Connect session.

    Args:
        settings: the client's settings (its token in ``auth.token``, the engine's Connect
            token in ``auth.connect_token``).
        tiles: the dashboard's tiles, in order.
    """

    def __init__(self, settings: Settings, tiles: list[TileSpec]) -> None:
        from workbench.spark.session import connect_session

        self.tiles = tiles
        self.engine = EngineClient(settings)
        self.spark = connect_session(settings)
        self._pool = ThreadPoolExecutor(max_workers=len(tiles), thread_name_prefix="tile")

    def refresh(self, path: str) -> dict[str, Any]:
        """Fetch every tile at once over ``path`` (``cache`` or ``connect``), timed."""
        fetch: Callable[[TileSpec], dict[str, Any]] = (
            partial(_cache_fetch, self.engine)
            if path == "cache"
            else partial(_connect_fetch, self.spark)
        )
        start = time.time()
        began = time.perf_counter()
        pending = [self._pool.submit(fetch, tile) for tile in self.tiles]
        tiles = [_outcome(future) for future in pending]
        seconds = time.perf_counter() - began
        return {"start": start, "end": time.time(), "seconds": seconds, "tiles": tiles}

    def phase(
        self, path: str, *, refreshes: int, interval: float, start_at: float
    ) -> list[dict[str, Any]]:
        """``refreshes`` refreshes, the k-th starting at ``start_at + k * interval`` (wall time)
        or as soon as the one before ended."""
        done = []
        for k in range(refreshes):
            delay = start_at + k * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            done.append(self.refresh(path))
        return done

    def close(self) -> None:
        """Stop the Connect session and the HTTP pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.engine.close()
        self.spark.stop()


def _outcome(future: Future[dict[str, Any]]) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - a failed tile is counted, the run goes on
        first = (str(err).strip().splitlines() or [""])[0]
        return {"rows": 0, "error": f"{type(err).__name__}: {first[:300]}"}


def client_main(stdin: IO[str], stdout: IO[str]) -> int:
    """The ``--client`` process: a JSON line of tiles, ``ready``, then one JSON answer per
    phase command (``{"path", "refreshes", "interval", "start_at"}``) until ``{"quit": true}``.

    Its settings (and so its token) come from the environment, as every service's do.
    """
    config = json.loads(stdin.readline())
    client = RefreshClient(load_settings(), [TileSpec(**t) for t in config["tiles"]])
    try:
        print("ready", file=stdout, flush=True)
        for line in stdin:
            command = json.loads(line)
            if command.get("quit"):
                break
            refreshes = client.phase(
                command["path"],
                refreshes=int(command["refreshes"]),
                interval=float(command["interval"]),
                start_at=float(command["start_at"]),
            )
            print(json.dumps({"refreshes": refreshes}), file=stdout, flush=True)
    finally:
        client.close()
    return 0


# -- the supervisor's side of the clients ---------------------------------------------------


@dataclass(frozen=True)
class BenchUser:
    """A client's catalog user and the token issued to it for this run."""

    name: str
    role: Role
    token: SecretStr


def make_users(settings: Settings, count: int) -> tuple[list[BenchUser], list[str]]:
    """Label the default MQTT source's dataset public (as the demo does) and create ``count``
    users, alternately viewer and user, each with a token; returns them and the labelled ids."""
    catalog = Catalog(settings.catalog.url)
    try:
        labelled = [d.ingestion_id for d in demo_devices(catalog)]
        users = []
        for index in range(count):
            role: Role = "viewer" if index % 2 == 0 else "user"
            name = f"tiles-{role}-{index:02d}"
            catalog.add_user(name, role)
            token = catalog.issue_token(name, label="bench", days=1.0)
            users.append(BenchUser(name, role, SecretStr(token.value)))
    finally:
        catalog.close()
    return users, labelled


def as_user(settings: Settings, token: SecretStr) -> Settings:
    """``settings`` speaking with ``token`` (and no token file to fall back on)."""
    auth = settings.auth.model_copy(
        update={"token": token, "token_file": "/nonexistent/workbench-token"}
    )
    return settings.model_copy(update={"auth": auth})


class ClientProcess:
    """One ``--client`` child: commands on its stdin, answers on its stdout, log on stderr."""

    def __init__(self, settings: Settings, index: int, user: BenchUser, log_dir: Path) -> None:
        self.index = index
        self.user = user
        self.log = log_dir / f"client-{index:02d}.log"
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workbench.bench.dashboard_tiles", "--client"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=child_env(as_user(settings, user.token)),
                cwd=ROOT,
            )

    def send(self, message: dict[str, Any]) -> None:
        """Write one JSON command line.

        Raises:
            RuntimeError: it exited (naming its log).
        """
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except OSError as err:
            raise self.failure("exited") from err

    def read_line(self) -> str:
        """The next line it prints that is ``ready`` or a JSON object ('' once it exited)."""
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line or line.strip() == "ready" or line.startswith("{"):
                return line.strip()

    def failure(self, what: str) -> RuntimeError:
        """An error naming this client, its exit code and its log (with the log's tail)."""
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return RuntimeError(
            f"tile client {self.index} ({self.user.name}) {what} (exit {self.proc.poll()}); "
            f"see {self.log}:\n{tail}"
        )

    def stop(self) -> None:
        """Ask it to quit, then make sure it did."""
        with suppress(RuntimeError, ValueError):  # it exited already
            self.send({"quit": True})
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)


class ClientGroup:
    """Every client process, started together and driven one phase at a time."""

    def __init__(self, settings: Settings, users: list[BenchUser], log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.clients = [ClientProcess(settings, i, u, log_dir) for i, u in enumerate(users)]
        self._readers = ThreadPoolExecutor(max_workers=len(users), thread_name_prefix="client")

    def start(self, tiles: list[TileSpec], timeout: float = CLIENT_START_TIMEOUT) -> None:
        """Hand every client the tiles; wait until each holds its Connect session.

        Raises:
            RuntimeError: a client exited or did not get ready in time (naming its log).
        """
        for client in self.clients:
            client.send({"tiles": [asdict(t) for t in tiles]})
        for client, line in zip(self.clients, self._lines(timeout, "starting"), strict=True):
            if line != "ready":
                raise client.failure("did not get ready")

    def phase(self, path: str, refreshes: int, timeout: float) -> list[list[dict[str, Any]]]:
        """One phase over ``path`` on every client at once; each client's refreshes.

        Raises:
            RuntimeError: a client failed or did not answer within ``timeout``.
        """
        start_at = time.time() + 1.0
        for client in self.clients:
            offset = INTERVAL * client.index / len(self.clients)
            client.send(
                {
                    "path": path,
                    "refreshes": refreshes,
                    "interval": INTERVAL,
                    "start_at": start_at + offset,
                }
            )
        answers = []
        for client, line in zip(self.clients, self._lines(timeout, path), strict=True):
            if not line.startswith("{"):
                raise client.failure(f"gave no answer to the {path} phase")
            answers.append(list(json.loads(line)["refreshes"]))
        return answers

    def _lines(self, timeout: float, what: str) -> Iterator[str]:
        deadline = time.monotonic() + timeout
        pending = [self._readers.submit(c.read_line) for c in self.clients]
        for client, future in zip(self.clients, pending, strict=True):
            try:
                yield future.result(timeout=max(deadline - time.monotonic(), 0.1))
            except FutureTimeout as err:
                raise client.failure(f"did not answer within {timeout:.0f} s ({what})") from err

    def stop(self) -> None:
        """Stop every client."""
        for client in self.clients:
            client.stop()
        self._readers.shutdown(wait=False, cancel_futures=True)


# -- the stack ------------------------------------------------------------------------------


def tiles_settings(settings: Settings, home: Path) -> Settings:
    """``settings`` isolated under ``home``: every service, Voila included, on a free port."""
    bench = bench_settings(settings, home)
    voila = bench.voila.model_copy(update={"host": "127.0.0.1", "port": free_port()})
    return bench.model_copy(update={"voila": voila})


def wait_for_gold(path: str, engine: EngineService, timeout: float = GOLD_TIMEOUT) -> int:
    """Block until the gold table holds rows; returns its version.

    Raises:
        ServiceUnavailableError: the engine exited, or no gold rows came in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.proc is not None and engine.proc.poll() is not None:
            raise ServiceUnavailableError(
                f"engine exited with {engine.proc.returncode}; see {engine.log}"
            )
        table = _delta(path)
        if table is not None and table.to_pyarrow_dataset().count_rows() > 0:
            return int(table.version())
        time.sleep(1.0)
    raise ServiceUnavailableError(
        f"no rows in {path} within {timeout:.0f} s; see {engine.log} (and ingest.log beside it)"
    )


def _delta(path: str) -> DeltaTable | None:
    if not (Path(path) / "_delta_log").exists():
        return None
    try:
        return DeltaTable(path)
    except Exception:  # noqa: BLE001 - a log being written; the next look sees it whole
        return None


def commit_times(path: str) -> dict[int, float]:
    """Every version of the Delta table at ``path`` → its commit time (epoch seconds)."""
    table = _delta(path)
    if table is None:
        return {}
    return {
        int(h["version"]): float(h["timestamp"]) / 1000
        for h in table.history()
        if "version" in h and "timestamp" in h
    }


def make_dashboard(settings: Settings) -> list[TileSpec]:
    """Create :data:`DASHBOARD` and its tiles through the engine (as the benchmark's admin);
    returns the tiles with their computations' SQL."""
    client = EngineClient(settings)
    try:
        client.save_dashboard(DASHBOARD, title="Tiles benchmark")
        for title, computation, viz, config, x, y, w, h in TILES:
            client.save_tile(Tile(DASHBOARD, title, computation, viz, config, x=x, y=y, w=w, h=h))
        board = client.dashboard(DASHBOARD)
        return [
            TileSpec(id=int(t.id or 0), sql=client.computation(t.computation).sql)
            for t in board.tiles
        ]
    finally:
        client.close()


class VoilaServer:
    """The dashboard app under ``voila``, as ``workbench up`` plans it: run from the app's
    directory (its ``voila.json``), with settings holding no secret."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://{settings.voila.host}:{settings.voila.port}/"
        self.log = Path(settings.home) / "voila.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (its kernels pre-heat in the background)."""
        v = self.settings.voila
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "voila",
                    str(DASHBOARD_APP),
                    "--no-browser",
                    f"--port={v.port}",
                    f"--Voila.ip={v.host}",
                ],
                env=child_env(without_secrets(self.settings)),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=DASHBOARD_APP.parent,
            )

    def wait_ready(self, timeout: float = 120.0) -> int:
        """Wait until it listens and its pre-heated kernels have settled; returns how many
        kernels it runs.

        Raises:
            ServiceUnavailableError: it exited or did not listen in time (naming its log).
        """
        assert self.proc is not None
        v = self.settings.voila
        try:
            wait_for_port(v.host, v.port, timeout, what="voila")
        except ServiceUnavailableError as err:
            raise ServiceUnavailableError(f"{err.message}; see {self.log}") from err
        deadline = time.monotonic() + timeout
        before = -1.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceUnavailableError(
                    f"voila exited with {self.proc.returncode}; see {self.log}"
                )
            kernels = self.kernels()
            spent = sum(cpu_seconds(k) for k in kernels)
            if len(kernels) >= _VOILA_POOL and spent - before < 0.05:
                return len(kernels)
            before = spent
            time.sleep(1.0)
        return len(self.kernels())

    def kernels(self) -> list[int]:
        """The pids of its kernels."""
        assert self.proc is not None
        return [p for p in process_tree(self.proc.pid) if "ipykernel" in _cmdline(p)]

    def kernel_pid(self, kernel_id: str) -> int | None:
        """The pid of the kernel whose connection file names ``kernel_id``."""
        return next((p for p in self.kernels() if f"kernel-{kernel_id}" in _cmdline(p)), None)

    def stop(self) -> None:
        """SIGTERM (it shuts its kernels down), kill after 20 s."""
        stop_process(self.proc, timeout=20.0)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def first_tile(voila: VoilaServer, token: SecretStr) -> dict[str, Any]:
    """Open the dashboard with ``token``'s sign-in link in a fresh headless Chromium: seconds
    from the navigation to the first plotted tile, the serving kernel's RSS right then, and the
    CPU seconds the kernel and the browser spent until then."""
    from playwright.sync_api import sync_playwright

    link = f"{voila.url}?token={token.get_secret_value()}&dashboard={DASHBOARD}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            assert voila.proc is not None
            before = {p: sched_seconds(p) for p in [voila.proc.pid, *voila.kernels()]}
            chromium = _chromium_cpu_seconds()
            seen = _visit(page, link)
            seen["browser_cpu_s"] = round(_chromium_cpu_seconds() - chromium, 2)
            kernel_id = str(page.evaluate(_CONFIG_JS).get("kernelId") or "")
            pid = voila.kernel_pid(kernel_id) if kernel_id else None
            seen["voila_kernel_rss_mb"] = rss_mb(pid) if pid else 0.0
            seen["kernel_found"] = pid is not None
            # CPU run and CPU waited for (runnable, not scheduled) during the visit.
            for name, each in (("kernel", pid), ("server", voila.proc.pid)):
                if each is not None and each in before:
                    ran, waited = sched_seconds(each)
                    seen[f"{name}_cpu_s"] = round(ran - before[each][0], 2)
                    seen[f"{name}_cpu_wait_s"] = round(waited - before[each][1], 2)
            # The browser's own clock, from the navigation's start: the page's first byte, the
            # page complete (the kernel ran the notebook), its scripts loaded.
            timing = page.evaluate(_NAVIGATION_JS)
            seen["navigation_s"] = {k: round(float(v) / 1000, 3) for k, v in timing.items()}
            return seen
        finally:
            browser.close()


def _visit(page: Any, link: str) -> dict[str, Any]:
    """Navigate to ``link``; seconds until the first tile card, the first plotted tile and
    every tile plotted."""
    started = time.monotonic()
    page.goto(link, wait_until="commit", timeout=120_000)
    page.locator(".workbench-tile").first.wait_for(state="visible", timeout=120_000)
    card = time.monotonic() - started
    page.locator(PLOTTED_TILE).first.wait_for(state="visible", timeout=120_000)
    plotted = time.monotonic() - started
    page.wait_for_function(
        f"n => document.querySelectorAll('{PLOTTED_TILE}').length >= n",
        arg=len(TILES),
        timeout=60_000,
    )
    return {
        "first_tile_s": round(plotted, 3),
        "first_card_s": round(card, 3),
        "all_tiles_s": round(time.monotonic() - started, 3),
    }


def _chromium_cpu_seconds() -> float:
    """CPU seconds of every Chromium process this process started (through playwright)."""
    return sum(
        own_cpu_seconds(pid)
        for pid in process_tree(os.getpid())
        if pid != os.getpid() and "chromium" in _cmdline(pid).split(" ", 1)[0]
    )


# -- the run --------------------------------------------------------------------------------


@dataclass
class Measured:
    """Every measured refresh per client and path, and the engine's CPU per path."""

    clients: int
    cache: list[list[dict[str, Any]]] = field(default_factory=list)
    connect: list[list[dict[str, Any]]] = field(default_factory=list)
    warmup: list[list[dict[str, Any]]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=lambda: {"cache": 0.0, "connect": 0.0})
    """The engine's process tree (its service and its JVM)."""
    service_cpu: dict[str, float] = field(default_factory=lambda: {"cache": 0.0, "connect": 0.0})
    """The engine's Python service alone (HTTP, the tile cache, the catalog)."""
    wall: dict[str, float] = field(default_factory=lambda: {"cache": 0.0, "connect": 0.0})
    rounds: list[dict[str, Any]] = field(default_factory=list)
    idle_cpu_per_s: float = 0.0
    floor_waits: float = 0.0

    def add(self, path: str, answers: list[list[dict[str, Any]]], used: Usage) -> None:
        """Count one phase: its refreshes, per client, and what the engine used."""
        target = self.cache if path == "cache" else self.connect
        if not target:
            target.extend([] for _ in range(self.clients))
        for mine, new in zip(target, answers, strict=True):
            mine.extend(new)
        self.cpu[path] += used.cpu
        self.service_cpu[path] += used.service_cpu
        self.wall[path] += used.wall


class Driver:
    """Drives the clients through their phases, timing each against the engine's CPU.

    A cache phase starts no sooner than the cache's refresh floor after the last one ended, so
    it opens on a gold version the cache has not checked yet (gold commits every few seconds):
    its first refreshes are fresh, the others warm.
    """

    def __init__(self, group: ClientGroup, engine: EngineService) -> None:
        assert engine.proc is not None
        self.group = group
        self.engine_pid = engine.proc.pid
        self.floor_waits = 0.0
        self._cache_ended = 0.0

    def phase(self, path: str, refreshes: int) -> tuple[list[list[dict[str, Any]]], Usage]:
        """One phase on every client; returns the refreshes and what the engine used."""
        if path == "cache":
            wait = self._cache_ended + MIN_REFRESH_SECONDS + 1.0 - time.monotonic()
            if wait > 0:
                self.floor_waits += wait
                time.sleep(wait)
        before = self.usage()
        answers = self.group.phase(path, refreshes, timeout=120.0 + 60.0 * refreshes)
        if path == "cache":
            self._cache_ended = time.monotonic()
        return answers, self.usage() - before

    def idle(self, seconds: float) -> float:
        """The engine's CPU seconds per second with no client (its streams only)."""
        before = self.usage()
        time.sleep(seconds)
        used = self.usage() - before
        return used.cpu / used.wall

    def usage(self) -> Usage:
        """The engine's CPU seconds so far, and the wall clock."""
        return Usage(
            cpu_seconds(self.engine_pid), own_cpu_seconds(self.engine_pid), time.monotonic()
        )


@dataclass(frozen=True)
class Usage:
    """CPU seconds of the engine's process tree and of its service process, and wall seconds
    (a reading, or the difference of two)."""

    cpu: float
    service_cpu: float
    wall: float

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu - other.cpu, self.service_cpu - other.service_cpu, self.wall - other.wall
        )


def measure_rounds(driver: Driver, rounds: int, bar: tqdm) -> Measured:
    """Warm up each path, measure the engine at rest, then ``rounds`` rounds of a cache phase
    and a baseline phase; last, one unmeasured cache refresh so that the cache holds the current
    gold version for the Voila visit that follows."""
    measured = Measured(clients=len(driver.group.clients))
    for path in ("cache", "connect"):
        bar.set_description(f"warm-up: {path}")
        answers, _ = driver.phase(path, WARMUP_REFRESHES)
        if path == "cache":
            measured.warmup = answers
    bar.set_description("engine at rest")
    measured.idle_cpu_per_s = driver.idle(IDLE_SECONDS)
    bar.update(1)
    for number in range(1, rounds + 1):
        row: dict[str, Any] = {"round": number}
        for path in ("cache", "connect"):
            bar.set_description(f"round {number}/{rounds}: {path}")
            answers, used = driver.phase(path, REFRESHES)
            measured.add(path, answers, used)
            seconds = [r["seconds"] for client in answers for r in client]
            row[f"{path}_p95_s"] = _round(percentile(seconds, 95))
            row[f"{path}_engine_cpu_s"] = round(used.cpu, 2)
            row[f"{path}_wall_s"] = round(used.wall, 2)
            bar.update(1)
        measured.rounds.append(row)
    bar.set_description("cache refresh before the voila visit")
    driver.phase("cache", 1)
    measured.floor_waits = driver.floor_waits
    return measured


@contextmanager
def bench_home() -> Iterator[Path]:
    """A temporary directory, removed when the run succeeds and kept (for its logs) when not."""
    home = Path(tempfile.mkdtemp(prefix="wb-bench-tiles-"))
    try:
        yield home
    except BaseException:
        print(f"tiles benchmark failed; logs kept in {home}", file=sys.stderr)
        raise
    shutil.rmtree(home, ignore_errors=True)


def run(
    settings: Settings,
    *,
    clients: int = CLIENTS,
    rounds: int = ROUNDS,
    rate: int = RATE,
    **_: Any,
) -> dict[str, Any]:
    """Start the stack and the clients, measure both paths and Voila, stop; the result."""
    if clients < 1 or rounds < 1:
        raise ConfigError(
            "--clients and --rounds must be at least 1", clients=clients, rounds=rounds
        )
    with bench_home() as home:
        bench = tiles_settings(settings, home)
        ensure_local_dirs(bench)
        users, labelled = make_users(bench, clients)
        broker = start_broker(home / "broker", bench.mqtt.host, bench.mqtt.port)
        ingest = IngestService(bench, profile_name="tiles-ingest")
        engine = EngineService(bench)
        voila = VoilaServer(bench)
        publisher: PublisherProcess | None = None
        group: ClientGroup | None = None
        gold_path = bench.lake.gold("sensor_averages")
        try:
            with tqdm(total=5 + 2 * rounds, unit="step", file=sys.stderr) as bar:
                bar.set_description("starting ingest and engine")
                ingest.start(need_mqtt=True)
                engine.start()
                publisher = PublisherProcess(
                    bench, rate=rate, seconds=PUBLISH_SECONDS, prefix="tiles-"
                )
                publisher.start()
                bar.update(1)
                bar.set_description("starting clients and voila; waiting for gold")
                group = ClientGroup(bench, users, home / "clients")
                voila.start()
                first_version = wait_for_gold(gold_path, engine)
                tiles = make_dashboard(bench)
                group.start(tiles)
                bar.update(1)
                measured = measure_rounds(Driver(group, engine), rounds, bar)
                bar.set_description("voila: first tile in chromium")
                kernels = voila.wait_ready()
                page = first_tile(voila, users[0].token)
                bar.update(1)
                group.stop()
                group = None
                jvm_peak = engine.jvm_peak_rss_mb()
                bar.set_description("stopping")
                bar.update(1)
            stamps = commit_times(gold_path)
        finally:
            if group is not None:
                group.stop()
            if publisher is not None:
                publisher.stop()
            voila.stop()
            engine.stop()
            ingest.stop()
            stop_process(broker)
        context = {
            "labelled": labelled,
            "first_version": first_version,
            "kernels": kernels,
            "jvm_peak": jvm_peak,
            "rate": rate,
            "rounds": rounds,
            "roles": [u.role for u in users],
        }
        return summarize(measured, stamps, page, context)


# -- the result -----------------------------------------------------------------------------


def classify(
    warmup: list[dict[str, Any]], refreshes: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One client's measured cache refreshes split into warm and fresh, in order; a fresh one
    carries ``new_versions``: the gold versions it saw first."""
    seen: dict[int, int] = {}
    for refresh in warmup:
        _new_versions(refresh, seen)
    warm, fresh = [], []
    for refresh in refreshes:
        new = _new_versions(refresh, seen)
        if new:
            fresh.append({**refresh, "new_versions": new})
        else:
            warm.append(refresh)
    return warm, fresh


def _new_versions(refresh: dict[str, Any], seen: dict[int, int]) -> list[int]:
    new = []
    for index, tile in enumerate(refresh["tiles"]):
        version = tile.get("version")
        if version is None:
            continue
        if version > seen.get(index, -1):
            if index in seen:
                new.append(int(version))
            seen[index] = int(version)
    return sorted(set(new))


def spread(values: list[float]) -> dict[str, Any]:
    """Count, p50, p95, min and max (seconds, to the millisecond)."""
    return {
        "count": len(values),
        "p50": _round(percentile(values, 50)),
        "p95": _round(percentile(values, 95)),
        "min": _round(min(values)) if values else None,
        "max": _round(max(values)) if values else None,
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _complete(refresh: dict[str, Any]) -> bool:
    return all(not t.get("error") and t.get("rows", 0) > 0 for t in refresh["tiles"])


def summarize(
    measured: Measured,
    stamps: dict[int, float],
    page: dict[str, Any],
    context: dict[str, Any],
) -> dict[str, Any]:
    """The result object (:func:`workbench.bench.harness.result`) with the six figures of the
    issue at its top level."""
    warm: list[dict[str, Any]] = []
    fresh: list[dict[str, Any]] = []
    for before, mine in zip(measured.warmup, measured.cache, strict=True):
        w, f = classify(before, mine)
        warm += w
        fresh += f
    cache = [r for client in measured.cache for r in client]
    connect = [r for client in measured.connect for r in client]
    staleness = [r["end"] - stamps[v] for r in fresh for v in r["new_versions"][-1:] if v in stamps]
    stats = {
        "warm": spread([r["seconds"] for r in warm]),
        "fresh": spread([r["seconds"] for r in fresh]),
        "baseline": spread([r["seconds"] for r in connect]),
    }
    warm_p95 = stats["warm"]["p95"] or 0.0
    baseline_p95 = stats["baseline"]["p95"] or 0.0
    ratio = round(warm_p95 / baseline_p95, 4) if baseline_p95 else None
    incomplete = {
        "cache": sum(1 for r in cache if not _complete(r)),
        "connect": sum(1 for r in connect if not _complete(r)),
    }
    watched = cache + [r for client in measured.warmup for r in client]
    versions_seen = {t["version"] for r in watched for t in r["tiles"] if "version" in t}
    start, end = min(r["start"] for r in cache), max(r["end"] for r in cache + connect)
    committed = [v for v, at in stamps.items() if start <= at <= end]
    out = result(
        "tiles",
        figure=warm_p95,
        unit="s (warm dashboard refresh p95, 4 tiles)",
        baseline=baseline_p95,
        lost=incomplete["cache"] + incomplete["connect"],
        peak_rss_mb=context["jvm_peak"],
        params={
            "clients": measured.clients,
            "roles": {r: context["roles"].count(r) for r in sorted(set(context["roles"]))},
            "tiles": len(TILES),
            "dashboard": DASHBOARD,
            "computations": [t[1] for t in TILES],
            "rounds": context["rounds"],
            "refreshes_per_phase": REFRESHES,
            "refresh_interval_s": INTERVAL,
            "warmup_refreshes": WARMUP_REFRESHES,
            "rate": context["rate"],
            "client_processes": True,
            "public_datasets": context["labelled"],
        },
        details={
            **{f"{name}_s": value for name, value in stats.items()},
            "warm_p50_s": stats["warm"]["p50"],
            "fresh_p50_s": stats["fresh"]["p50"],
            "baseline_p50_s": stats["baseline"]["p50"],
            "cache_refreshes": len(cache),
            "baseline_refreshes": len(connect),
            "cache_tile_fetches": sum(len(r["tiles"]) for r in cache),
            "baseline_queries": sum(len(r["tiles"]) for r in connect),
            "incomplete_refreshes": incomplete,
            "tile_rows_min": min(t.get("rows", 0) for r in cache + connect for t in r["tiles"]),
            "cache_runs_seen": sum(
                1 for r in cache for t in r["tiles"] if t.get("from_cache") is False
            ),
            "gold_versions_seen": len(versions_seen),
            "gold_versions_committed": len(committed),
            "gold_first_version": context["first_version"],
            "staleness_s": spread(staleness),
            "engine_cpu_s": {k: round(v, 2) for k, v in measured.cpu.items()},
            "engine_service_cpu_s": {k: round(v, 2) for k, v in measured.service_cpu.items()},
            "engine_idle_cpu_per_s": round(measured.idle_cpu_per_s, 3),
            "engine_cpu_beyond_idle_s": {
                k: round(v - measured.idle_cpu_per_s * measured.wall[k], 2)
                for k, v in measured.cpu.items()
            },
            "phase_wall_s": {k: round(v, 2) for k, v in measured.wall.items()},
            "floor_wait_s": round(measured.floor_waits, 2),
            "rounds": measured.rounds,
            "voila": {**page, "kernels": context["kernels"]},
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "targets": {
                **TARGETS,
                "met": _met(stats, ratio, page),
            },
        },
        extra_versions={"mosquitto": mosquitto_version(), **_client_versions()},
    )
    out.update(
        {
            "figure": warm_p95,
            "baseline": baseline_p95,
            "ratio": ratio,
            "warm_p95_s": warm_p95,
            "fresh_p95_s": stats["fresh"]["p95"],
            "baseline_p95_s": baseline_p95,
            "first_tile_s": page["first_tile_s"],
            "voila_kernel_rss_mb": page["voila_kernel_rss_mb"],
        }
    )
    return out


def _met(stats: dict[str, dict[str, Any]], ratio: float | None, page: dict[str, Any]) -> bool:
    checks = (
        (stats["warm"]["p95"], TARGETS["warm_p95_s"]),
        (stats["fresh"]["p95"], TARGETS["fresh_p95_s"]),
        (ratio, TARGETS["ratio"]),
        (page["first_tile_s"], TARGETS["first_tile_s"]),
    )
    return all(value is not None and value <= target for value, target in checks)


def _client_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("pyspark", "delta-spark", "voila", "playwright", "pandas"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.bench.dashboard_tiles --client``: one dashboard client (see
    :func:`client_main`); the benchmark itself runs as ``workbench bench tiles``."""
    parser = argparse.ArgumentParser(description="one client of `workbench bench tiles`")
    parser.add_argument("--client", action="store_true", required=True)
    parser.parse_args(argv)
    return client_main(sys.stdin, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
