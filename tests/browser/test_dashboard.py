"""The stakeholder dashboard, served by a real Voila and looked at by headless Chromium."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.browser import PLOT_LINES, PLOT_POINTS, browser_page
from tests.fixtures.services import ROOT, child_env, free_port
from tests.fixtures.stack import (  # noqa: F401  (stack_fixture: the module-scoped engine)
    MINUTES,
    SENSORS,
    Stack,
    gold_rows,
    seed_gold_averages,
    stack_fixture,
)

pytestmark = [pytest.mark.browser, pytest.mark.spark]

APP = ROOT / "voila_apps" / "dashboard" / "app.ipynb"
SCREENSHOT = ROOT / "test-artifacts" / "dashboard.png"


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with {proc.returncode} before serving {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"voila did not serve {url} within {timeout} s")


@pytest.fixture(scope="module")
def voila_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``voila`` server for the dashboard app, configured only through the env."""
    port = free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voila",
                str(APP),
                "--no-browser",
                f"--port={port}",
                "--Voila.ip=127.0.0.1",
            ],
            cwd=str(APP.parent),
            env=child_env(stack.settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_http(url + "api/status", proc, timeout=60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log.read_text(errors="replace")[-3000:])


def test_dashboard_shows_the_live_tile_and_refreshes(stack: Stack, voila_url: str) -> None:
    with browser_page() as page:
        page.goto(voila_url, timeout=120_000)
        # One drawn line per sensor: the figure arrived with its data points.
        lines = page.locator(PLOT_LINES)
        lines.first.wait_for(state="attached", timeout=120_000)
        assert lines.count() == len(SENSORS)
        points = page.locator(PLOT_POINTS)
        assert points.count() == len(SENSORS) * 6
        legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
        assert sorted(legend) == list(SENSORS)
        badge = page.locator(".workbench-freshness").inner_text()
        assert badge.startswith("data ") and badge.endswith(" old"), badge
        assert "refreshed" in page.locator(".workbench-refreshed").inner_text()
        assert page.get_by_text("sensor_averages").first.is_visible()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        # New gold rows reach the open page through the tile's own refresh loop.
        seed_gold_averages(
            stack.settings, gold_rows(stack.seeded_at, minutes=range(MINUTES, MINUTES + 1))
        )
        expected = len(SENSORS) * (MINUTES + 1)
        page.wait_for_function(
            f"n => document.querySelectorAll('{PLOT_POINTS}').length === n",
            arg=expected,
            timeout=60_000,
        )
