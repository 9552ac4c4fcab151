"""Child processes of the workbench: wait until one serves, stop one politely.

Used by ``workbench up``, the benchmarks and the test fixtures, so every supervisor waits and
stops the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from workbench.core.errors import ServiceUnavailableError, UnauthorizedError
from workbench.core.settings import Settings, settings_env

#: Set by a Spark Connect client session for its whole process; a child engine inheriting them
#: would start as a client instead of a driver.
SPARK_CLIENT_ENV = (
    "SPARK_CONNECT_MODE_ENABLED",
    "SPARK_REMOTE",
    "SPARK_CONNECT_AUTHENTICATE_TOKEN",
)


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a child process that must run with exactly ``settings``.

    The parent's ``WORKBENCH__*`` variables and Spark client switches are dropped, the settings
    are passed as variables, and the TOML file is pointed away so nothing else leaks in.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WORKBENCH__") and k not in SPARK_CLIENT_ENV
    }
    env.update(settings_env(settings))
    env["WORKBENCH__CONFIG"] = str(Path(settings.home) / "none.toml")
    return env


def wait_healthy(
    url: str,
    proc: subprocess.Popen[Any],
    *,
    timeout: float,
    what: str,
    ready: Callable[[Any], bool] = lambda _body: True,
    log_path: Path | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """Poll ``url`` until it answers below 500 with a JSON body that ``ready`` accepts
    (sending ``headers``, e.g. a route's ``Authorization``).

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
            response = httpx.get(url, timeout=1, headers=headers)
            if response.status_code in (401, 403):  # waiting cannot mend a refused token
                raise UnauthorizedError(f"{what} refused the token at {url}: {response.text}")
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
