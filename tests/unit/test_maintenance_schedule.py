"""The maintenance schedule ends on a terminal error and is logged with its code; a transient
one is retried at the next round."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tests.fixtures.services import make_settings
from workbench.catalog.records import Device
from workbench.core.errors import ConfigError
from workbench.maintenance.runner import MaintenanceScheduler


def test_a_round_failing_terminally_ends_the_schedule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, maintenance={"interval_seconds": 0.01})
    calls: list[int] = []

    def devices() -> list[Device]:
        calls.append(1)
        raise ConfigError("device retention pattern is invalid", pattern="[")

    stopped: list[tuple[str, str]] = []
    # No round gets as far as the session: the devices are read first.
    scheduler = MaintenanceScheduler(
        None,  # type: ignore[arg-type]
        settings,
        devices,
        on_terminal=lambda *s: stopped.append(s),
    )
    with caplog.at_level(logging.ERROR, logger="workbench.maintenance.runner"):
        assert scheduler.start()
        assert scheduler._thread is not None
        scheduler._thread.join(timeout=30)  # ends by itself: nothing left to retry
        assert not scheduler._thread.is_alive()
    assert len(calls) == 1 and scheduler.failed == "config_error"
    assert stopped == [("maintenance", "config_error")]
    assert "code=config_error" in caplog.text


def test_a_transient_round_failure_is_retried_at_the_next_round(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, maintenance={"interval_seconds": 0.01})
    calls: list[int] = []
    third = threading.Event()

    def devices() -> list[Device]:
        calls.append(1)
        if len(calls) >= 3:
            third.set()
        raise ConnectionError("catalog away")

    scheduler = MaintenanceScheduler(None, settings, devices)  # type: ignore[arg-type]
    assert scheduler.start()
    try:
        assert third.wait(30)
    finally:
        scheduler.stop()
    assert scheduler.failed is None and "ConnectionError" in (scheduler.last_error or "")
