"""Child processes of the workbench: wait until one serves, stop one politely.

Used by ``workbench up``, the benchmarks and the test fixtures, so every supervisor waits and
stops the same way.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from workbench.core.errors import ServiceUnavailableError


def wait_healthy(
    url: str,
    proc: subprocess.Popen[Any],
    *,
    timeout: float,
    what: str,
    ready: Callable[[Any], bool] = lambda _body: True,
    log_path: Path | None = None,
) -> Any:
    """Poll ``url`` until it answers below 500 with a JSON body that ``ready`` accepts.

    Returns:
        The accepted JSON body.

    Raises:
        ServiceUnavailableError: ``proc`` exited first or ``timeout`` passed; the message ends
            with the tail of ``log_path`` when given.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailableError(
                f"{what} exited with code {proc.returncode} while starting{_tail(log_path)}"
            )
        try:
            response = httpx.get(url, timeout=1)
            if response.status_code < 500:
                body = response.json()
                if ready(body):
                    return body
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise ServiceUnavailableError(f"{what} not ready within {timeout:.0f}s{_tail(log_path)}")


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then kill."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log_path: Path | None) -> str:
    if log_path is None:
        return ""
    if not log_path.exists():
        return f"; see {log_path}"
    return f"; see {log_path}:\n{log_path.read_text(errors='replace')[-3000:]}"
