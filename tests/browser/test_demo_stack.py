"""``workbench up`` as a user runs it: live simulator data reaches the dashboard; Ctrl-C stops all.

Nothing is seeded: the temperature simulator publishes to the embedded Mosquitto, the ingest
service lands bronze, the engine streams silver and gold, and the Voila tile draws it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.browser import PLOT_LINES, browser_page
from tests.fixtures.services import ROOT, child_env
from workbench.core.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.spark]

SCREENSHOT = ROOT / "test-artifacts" / "demo.png"


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture
def stack(settings: Settings) -> Iterator[tuple[subprocess.Popen[str], float]]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "up"],
        env=child_env(settings),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a failed test stops every service
    )
    yield proc, started
    # After a failure ``workbench up`` may still run; killing it alone would orphan the
    # services it started (and leave them loading the machine for the rest of the suite).
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to a terminal's group
    except ProcessLookupError:
        return  # stopped, with every child, by the test itself
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        proc.poll()  # reap it: a zombie still counts as a member of the group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_demo_stack_fills_the_dashboard_and_stops_on_ctrl_c(
    settings: Settings, stack: tuple[subprocess.Popen[str], float]
) -> None:
    proc, started = stack
    assert proc.stdout is not None
    output = []
    for line in proc.stdout:  # the URLs are printed once every service is ready
        output.append(line)
        if line.lstrip().startswith("viewer ") or proc.poll() is not None:
            break
    text = "".join(output)
    base = f"http://{settings.voila.host}:{settings.voila.port}/"
    # Each demo user gets a sign-in link with a fresh token of its own; no default secrets.
    links = dict(re.findall(r"^  (\w+) +\(\w+ *\) (http://\S+/\?token=wbt_\S+)$", text, re.M))
    assert sorted(links) == ["admin", "analyst", "viewer"], text
    assert len({link.split("=", 1)[1] for link in links.values()}) == 3
    assert all(link.startswith(base) for link in links.values())

    with browser_page() as page:
        page.goto(links["viewer"], timeout=120_000)
        deadline = time.monotonic() + 240
        # The tile refreshes by itself; reload only to keep the test independent of its timer.
        while page.locator(PLOT_LINES).count() == 0:
            assert time.monotonic() < deadline, "no gold data on the dashboard in 240 s"
            assert proc.poll() is None, "workbench up died:\n" + text
            page.wait_for_timeout(settings.voila.refresh_seconds * 1000)
        shown_after = time.monotonic() - started
        legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
        # The simulator's dataset is public; the devices table is not for viewers.
        restricted = page.locator(".workbench-restricted").all_inner_texts()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"dashboard showed gold data {shown_after:.0f} s after `workbench up` started")
    assert any(name.startswith("temp-") for name in legend), legend
    assert len(restricted) == 1 and "'internal'" in restricted[0], restricted

    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest
    assert "stopped." in rest
    ports = [settings.mqtt.port, settings.ingest.port, settings.engine.port, settings.voila.port]
    assert not [p for p in ports if listening("127.0.0.1", p)]
    assert Path(settings.home, "logs", "engine.log").exists()
