"""The stakeholder dashboard, served by a real Voila and looked at by headless Chromium, as a
viewer, as an admin and as someone without a valid token."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.browser import PLOT_LINES, PLOT_POINTS, browser_page
from tests.fixtures.services import ROOT, child_env, free_port
from tests.fixtures.stack import (  # noqa: F401  (stack_fixture: the module-scoped engine)
    MINUTES,
    SECRET_VALUE,
    SENSORS,
    Stack,
    gold_rows,
    label_lab_devices,
    seed_gold_averages,
    stack_fixture,
)
from workbench.catalog.records import AlertObservation
from workbench.catalog.store import Catalog
from workbench.stack.up import without_secrets

pytestmark = [pytest.mark.browser, pytest.mark.spark]

APP = ROOT / "voila_apps" / "dashboard" / "app.ipynb"
SCREENSHOT_VIEWER = ROOT / "test-artifacts" / "dashboard-viewer.png"
SCREENSHOT_ADMIN = ROOT / "test-artifacts" / "dashboard-admin.png"


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
            # As `workbench up` runs it: no token, no service secret; visitors bring theirs.
            env=child_env(without_secrets(stack.settings)),
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


@pytest.fixture(scope="module")
def lab(stack: Stack) -> dict[str, str]:
    """A dashboard ``lab`` over two devices: ``demo-sensors`` (public: its tile plots for a
    viewer) and ``secret-lab`` (confidential: restricted for a viewer, a table for an admin).
    Answers the tokens of an admin and a viewer."""
    viewer = label_lab_devices(stack, {"watcher": "viewer"})["watcher"]

    assert stack.settings.auth.token is not None
    admin = stack.settings.auth.token.get_secret_value()
    engine = f"http://{stack.settings.engine.host}:{stack.settings.engine.port}"
    auth = {"authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=engine, headers=auth, timeout=120) as http:
        computations = {
            "demo_temperature": (
                "SELECT window_start, sensor_id, avg_value FROM gold.sensor_averages "
                "WHERE ingestion_id = 'demo-sensors' AND field = 'temperature'",
                "timeseries",
            ),
            "lab_vault": (
                "SELECT sensor_id, avg_value FROM gold.sensor_averages "
                "WHERE ingestion_id = 'secret-lab'",
                "table",
            ),
        }
        for name, (sql, viz) in computations.items():
            body = {"sql": sql, "tile_type": viz, "tile_config": {}}
            http.put(f"/api/computations/{name}", json=body).raise_for_status()
        http.put("/api/dashboards/lab", json={"title": "Lab"}).raise_for_status()
        tiles = [
            {
                "title": "Temperature",
                "computation": "demo_temperature",
                "viz": "timeseries",
                "config": {"x": "window_start", "y": "avg_value", "color": "sensor_id"},
                "x": 0,
                "y": 0,
                "w": 8,
                "h": 4,
            },
            {"title": "Vault", "computation": "lab_vault", "viz": "table", "x": 8, "w": 4},
        ]
        for tile in tiles:
            http.post("/api/dashboards/lab/tiles", json=tile).raise_for_status()
        rule = http.post(
            "/api/alert-rules",
            json={"name": "lab too hot", "field": "temperature", "op": "gt", "threshold": 30},
        ).json()["id"]
    # What the gold stream would record for a hot window of each device (tested on Spark in
    # tests/spark/test_processor.py); the page must show each person only their own.
    catalog = Catalog(stack.settings.catalog.url)
    catalog.apply_alert_observations(
        AlertObservation(rule, device, "lab-1", stack.seeded_at, True, 31.5, "public")
        for device in ("demo-sensors", "secret-lab")
    )
    catalog.close()
    return {"admin": admin, "viewer": viewer}


def _open(page: Any, url: str, query: str) -> None:
    page.goto(f"{url}?{query}", timeout=120_000)


def test_a_viewer_sees_public_tiles_and_a_restricted_card(
    stack: Stack, voila_url: str, lab: dict[str, str]
) -> None:
    with browser_page() as page:
        started = time.monotonic()
        _open(page, voila_url, f"token={lab['viewer']}&dashboard=lab")
        lines = page.locator(PLOT_LINES)
        lines.first.wait_for(state="attached", timeout=120_000)
        print(f"first tile plotted {time.monotonic() - started:.1f} s after navigation")
        # The public device's tile: one line per sensor, six points each.
        assert lines.count() == len(SENSORS)
        assert page.locator(PLOT_POINTS).count() == len(SENSORS) * MINUTES
        legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
        assert sorted(legend) == list(SENSORS)
        assert "signed in as watcher (viewer)" in page.locator(".workbench-signed-in").inner_text()

        card = page.locator(".workbench-restricted")
        card.wait_for(timeout=30_000)
        reason = card.inner_text()
        assert "'secret-lab'" in reason and "'confidential'" in reason, reason
        assert "'admin'" in reason, reason  # the clearance it needs
        # Nothing of the confidential rows reached the page, not even hidden.
        html = page.content()
        assert str(SECRET_VALUE) not in html and "vault-1" not in html
        alerts = page.locator(".workbench-alerts")
        text = alerts.inner_text()
        assert "lab too hot" in text and "demo-sensors" in text, text
        assert "secret-lab" not in text and "1 more above your clearance (public)" in text, text
        assert alerts.get_by_role("button", name="Acknowledge").count() == 0  # viewers look
        badge = page.locator(".workbench-freshness").first.inner_text()
        assert badge.startswith("data ") and badge.endswith(" old"), badge
        SCREENSHOT_VIEWER.parent.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 1000})  # Voila's page scrolls inside
        page.screenshot(path=str(SCREENSHOT_VIEWER), full_page=True)

        # New gold rows reach the open page: the tile refreshes, the engine's cache sees the
        # table's new version.
        seed_gold_averages(
            stack.settings, gold_rows(stack.seeded_at, minutes=range(MINUTES, MINUTES + 1))
        )
        page.wait_for_function(
            f"n => document.querySelectorAll('{PLOT_POINTS}').length === n",
            arg=len(SENSORS) * (MINUTES + 1),
            timeout=90_000,
        )


def test_an_admin_sees_the_confidential_tile(voila_url: str, lab: dict[str, str]) -> None:
    with browser_page() as page:
        _open(page, voila_url, f"token={lab['admin']}&dashboard=lab")
        page.locator(PLOT_LINES).first.wait_for(state="attached", timeout=120_000)
        page.get_by_text("vault-1").first.wait_for(timeout=30_000)
        assert page.locator(".workbench-restricted").count() == 0
        assert str(SECRET_VALUE) in page.content()
        alerts = page.locator(".workbench-alerts")
        assert "secret-lab" in alerts.inner_text()
        buttons = alerts.get_by_role("button", name="Acknowledge")
        assert buttons.count() == 2
        buttons.first.click()
        alerts.get_by_text("acknowledged by").first.wait_for(timeout=30_000)
        assert buttons.count() == 1
        page.screenshot(path=str(SCREENSHOT_ADMIN), full_page=True)


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("", "Sign in to see this dashboard"),
        ("token=wbt_forged0000000000000000000000", "This link's token is not valid"),
    ],
)
def test_without_a_valid_token_the_page_shows_only_how_to_sign_in(
    voila_url: str, lab: dict[str, str], query: str, title: str
) -> None:
    with browser_page() as page:
        _open(page, voila_url, query)
        card = page.locator(".workbench-sign-in")
        card.wait_for(timeout=120_000)
        assert title in card.inner_text()
        assert page.locator(".workbench-tile").count() == 0
        assert "vault-1" not in page.content()
