"""``workbench up``: the embedded demo as a supervised set of processes.

Starts, in order, Mosquitto (unless an external broker is configured), the ingest service, the
engine service, the temperature simulator and the Voila dashboard; prints the URLs; stops them
all, in reverse order, on Ctrl-C or when one of them dies (pointing at its log).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.catalog.store import Catalog
from workbench.client.credentials import client_token, save_token
from workbench.core.errors import ServiceUnavailableError
from workbench.core.settings import AuthSettings, Settings, ensure_local_dirs
from workbench.stack.broker import mosquitto_binary, wait_for_port, write_config
from workbench.stack.demo_access import (
    DEMO_TOKEN_DAYS,
    DemoUser,
    demo_alert_rules,
    demo_devices,
    demo_users,
    with_service_secrets,
)
from workbench.stack.process import child_env, stop_process, wait_healthy

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "voila_apps" / "dashboard" / "app.ipynb"


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    ready_url: str | None = None
    ready_port: tuple[str, int] | None = None
    timeout: float = 60.0
    cwd: Path = REPO
    holds_secrets: bool = True
    """False for the dashboard server: its visitors bring their own tokens, so it is given
    no token, no service secret, no object-store key and no catalog."""
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


def plan(settings: Settings) -> list[Child]:
    """The processes of the demo stack, in start order."""
    py = sys.executable
    children = []
    if settings.mqtt.embedded:
        conf = write_config(Path(settings.home) / "broker", settings.mqtt.host, settings.mqtt.port)
        children.append(
            Child(
                "broker",
                [mosquitto_binary(), "-c", str(conf)],
                ready_port=(settings.mqtt.host, settings.mqtt.port),
                timeout=10,
            )
        )
    ing, eng, voila = settings.ingest, settings.engine, settings.voila
    children += [
        Child(
            "ingest",
            [py, "-m", "workbench", "ingest"],
            ready_url=f"http://{ing.host}:{ing.port}/health",
            timeout=30,
        ),
        Child(
            "engine",
            [py, "-m", "workbench", "engine"],
            ready_url=f"http://{eng.host}:{eng.port}/health",
            timeout=180,
        ),
        Child("simulator", [py, "-m", "workbench", "simulate", "--kind", "temperature"]),
        Child(
            "voila",
            [
                py,
                "-m",
                "voila",
                str(DASHBOARD),
                "--no-browser",
                f"--port={voila.port}",
                f"--Voila.ip={voila.host}",
            ],
            ready_port=(voila.host, voila.port),
            timeout=60,
            cwd=DASHBOARD.parent,  # where its voila.json is read
            holds_secrets=False,
        ),
    ]
    return children


def run_stack(settings: Settings) -> int:
    """Run the demo stack until Ctrl-C; returns the exit code."""
    ensure_local_dirs(settings)
    settings = with_service_secrets(settings)
    catalog = Catalog(settings.catalog.url)  # migrated once, before services race to do it
    try:
        users = demo_users(catalog)
        demo_devices(catalog)
        demo_alert_rules(catalog)
        saved = _save_admin_token(settings, catalog, users[0])
    finally:
        catalog.close()
    logs = Path(settings.home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env, public_env = child_env(settings), child_env(without_secrets(settings))
    children = plan(settings)
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        for child in children:
            _start(child, env if child.holds_secrets else public_env, logs)
            print(f"  started {child.name:<9} log: {child.log_path}", flush=True)
        _print_urls(settings)
        _print_sign_in(settings, users, saved)
        while not stopping:
            for child in children:
                if child.proc and child.proc.poll() is not None:
                    print(
                        f"\n{child.name} exited with code {child.proc.returncode}; "
                        f"see {child.log_path}. Stopping the stack.",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except ServiceUnavailableError as err:
        print(f"\n{err.message}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping the stack...", flush=True)
        for child in reversed(children):
            stop_process(child.proc, timeout=40.0)
        print("stopped.", flush=True)


def _start(child: Child, env: dict[str, str], logs: Path) -> None:
    child.log_path = logs / f"{child.name}.log"
    with open(child.log_path, "ab") as out:
        child.proc = subprocess.Popen(
            child.argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=child.cwd,
            start_new_session=True,
        )
    if child.ready_port:
        wait_for_port(*child.ready_port, child.timeout, what=child.name)
    if child.ready_url:
        wait_healthy(
            child.ready_url,
            child.proc,
            timeout=child.timeout,
            what=child.name,
            log_path=child.log_path,
        )


def without_secrets(settings: Settings) -> Settings:
    """``settings`` with nothing secret left: no API token (nor a token file to read), no
    Spark Connect or scrape token, no object-store keys, no catalog URL."""
    update = {
        "auth": AuthSettings(token_file="/nonexistent/workbench-token"),
        "s3": settings.s3.model_copy(update={"access_key": None, "secret_key": None}),
        "catalog": settings.catalog.model_copy(update={"url": "sqlite:///:memory:"}),
    }
    return settings.model_copy(update=update)


def _save_admin_token(settings: Settings, catalog: Catalog, admin: DemoUser) -> Path | None:
    """Give the CLI and kernels the admin's token, unless the login file holds a token that
    still works (someone signed in on purpose); returns the path written, if any."""
    current = client_token(settings)
    if current is not None and catalog.identify(current.get_secret_value()) is not None:
        return None
    return save_token(settings, admin.token)


def _print_sign_in(settings: Settings, users: list[DemoUser], saved: Path | None) -> None:
    v = settings.voila
    lines = [
        f"\nSign in (new tokens at every start, valid {DEMO_TOKEN_DAYS:.0f} days; "
        "`workbench users` manages them):"
    ]
    for user in users:
        token = user.token.get_secret_value()
        lines.append(f"  {user.name:<8} ({user.role:<6}) http://{v.host}:{v.port}/?token={token}")
    if saved is not None:
        lines.append(f"  the CLI and the Workbench kernel use the admin's token, saved to {saved}")
    else:
        lines.append("  the CLI and kernels keep the token `workbench login` saved")
    print("\n".join(lines), flush=True)


def _print_urls(settings: Settings) -> None:
    v, i, e, m = settings.voila, settings.ingest, settings.engine, settings.mqtt
    print(
        "\nThe workbench is up (Ctrl-C stops everything):\n"
        f"  dashboard (Voila)   http://{v.host}:{v.port}/\n"
        f"  ingest API          http://{i.host}:{i.port}/health   push: POST /api/push/http\n"
        f"  engine API          http://{e.host}:{e.port}/status\n"
        f"  Spark Connect       {e.connect_url}   (token: admins and services only)\n"
        f"  MQTT broker         mqtt://{m.host}:{m.port}  topic {m.topic}\n"
        f"  JupyterLab          make lab   (kernel: Workbench)\n"
        "The dashboard fills with live gold data within about a minute.",
        flush=True,
    )
