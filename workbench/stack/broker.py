"""The embedded Mosquitto broker of the demo stack (and of the tests)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from workbench.core.errors import ConfigError, ServiceUnavailableError

CONFIG = """\
# Run as whoever starts us: started as root, mosquitto would otherwise switch to the
# "mosquitto" user, which cannot write the persistence file or log into our directory, and
# every session and queued message would be lost on restart.
user {user}
listener {port} {host}
allow_anonymous true
persistence true
persistence_location {data}/
autosave_interval 5
# Keep every QoS 1 message for a persistent session, however long the ingest service is away;
# mosquitto's default (1000) would silently drop the rest.
max_queued_messages 0
max_queued_bytes 0
log_dest file {log}
log_type error
log_type warning
log_type notice
"""


def mosquitto_binary() -> str:
    """Path of ``mosquitto``; explains how to install it when missing."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if not found:
        raise ConfigError(
            "mosquitto is not installed; run `make setup` (installs the Debian package) or set "
            "WORKBENCH__MQTT__EMBEDDED=false and point WORKBENCH__MQTT__HOST/PORT at a broker"
        )
    return found


def write_config(directory: Path, host: str, port: int) -> Path:
    """Write a persistent-broker config under ``directory``; returns its path."""
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = directory / "mosquitto.conf"
    path.write_text(
        CONFIG.format(
            user=pwd.getpwuid(os.getuid()).pw_name,
            port=port,
            host=host,
            data=data,
            log=directory / "mosquitto.log",
        )
    )
    return path


def start_broker(
    directory: Path, host: str, port: int, timeout: float = 10.0
) -> subprocess.Popen[bytes]:
    """Start Mosquitto and wait until it accepts connections."""
    config = write_config(directory, host, port)
    proc = subprocess.Popen(
        [mosquitto_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for_port(host, port, timeout, proc=proc, what="mosquitto")
    return proc


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "service",
) -> None:
    """Block until ``host:port`` accepts TCP connections.

    Raises:
        ServiceUnavailableError: on timeout or if ``proc`` exits first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise ServiceUnavailableError(f"{what} exited with {proc.returncode}: {err[-2000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailableError(f"{what} did not listen on {host}:{port} within {timeout}s")
