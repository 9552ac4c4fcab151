"""Source secrets through a real ingest process: used by the poller, never shown or logged."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from tests.fixtures.services import ROOT, IngestProcess
from tests.integration.conftest import read_bronze, wait_for
from workbench.catalog.store import Catalog
from workbench.client.credentials import auth_headers
from workbench.client.ingest_client import IngestClient
from workbench.core.errors import ConfigError
from workbench.core.settings import Settings
from workbench.stack.process import child_env

BEARER = "bearer-secret-Q7W2E9R4"
QUERY_TOKEN = "query-secret-T5Y8U1I3"
URL_PASSWORD = "url-secret-O6P3A8S2"
API_KEY = "key-secret-D4F7G1H5"
SECRETS = (BEARER, QUERY_TOKEN, URL_PASSWORD, API_KEY)


class VendorApi(BaseHTTPRequestHandler):
    """A loopback API that demands credentials and records what each request carried."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.seen.append({"path": self.path, "headers": headers})
        if self.path.startswith("/broken"):
            self.send_response(500)
            self.end_headers()
            return
        basic = "Basic " + base64.b64encode(f"reader:{URL_PASSWORD}".encode()).decode()
        allowed = (
            headers.get("authorization") == f"Bearer {BEARER}"
            and f"access_token={QUERY_TOKEN}" in self.path
        ) or (headers.get("authorization") == basic and headers.get("x-api-key") == API_KEY)
        if not allowed:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"data": [{"id": 1, "temperature": 21.5}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def vendor() -> Iterator[str]:
    VendorApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), VendorApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def client(settings: Settings, ingest: IngestProcess) -> Iterator[IngestClient]:
    c = IngestClient(settings)
    yield c
    c.close()


def configs(host: str) -> dict[str, dict[str, Any]]:
    common = {"records_path": "data", "record_key": "id", "interval_seconds": 0.2}
    return {
        "bearer": {
            **common,
            "url": f"http://{host}/readings?access_token={QUERY_TOKEN}&units=si",
            "headers": {"Authorization": f"Bearer {BEARER}", "Accept": "application/json"},
            "allow_private": True,
        },
        "basic": {
            **common,
            "url": f"http://reader:{URL_PASSWORD}@{host}/readings",
            "headers": {"x-api-key": API_KEY},
            "allow_private": True,
        },
        "flaky": {
            **common,
            "url": f"http://reader:{URL_PASSWORD}@{host}/broken?access_token={QUERY_TOKEN}",
            "retries": 0,
            "allow_private": True,
        },
    }


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows {secret}"


def authorized(source: str) -> int:
    """Requests of one source that carried its real credentials."""
    basic = "Basic " + base64.b64encode(f"reader:{URL_PASSWORD}".encode()).decode()
    if source == "bearer":
        return sum(
            1
            for r in VendorApi.seen
            if r["headers"].get("authorization") == f"Bearer {BEARER}"
            and f"access_token={QUERY_TOKEN}" in r["path"]
        )
    return sum(
        1
        for r in VendorApi.seen
        if r["headers"].get("authorization") == basic and r["headers"].get("x-api-key") == API_KEY
    )


def test_source_secrets_are_used_but_never_shown_or_logged(
    settings: Settings, ingest: IngestProcess, client: IngestClient, vendor: str
) -> None:
    wanted = configs(vendor)
    for name, config in wanted.items():
        assert_no_secret(json.dumps(client.create(name, "rest_poll", config)), f"create {name}")

    # The poller sends the real credentials: the API answers only those.
    wait_for(lambda: authorized("bearer") >= 2 and authorized("basic") >= 2, what="polls")
    wait_for(lambda: read_bronze(settings).num_rows >= 2, what="both sources' records")
    wait_for(lambda: client.health("flaky").last_error is not None, what="the failing poll")

    auth = auth_headers(settings)
    listed = httpx.get(f"{ingest.url}/api/sources", headers=auth).text
    assert_no_secret(listed, "GET /api/sources")
    by_name = {s["name"]: s for s in json.loads(listed)}
    assert by_name["bearer"]["config"]["headers"] == {
        "Authorization": "***",
        "Accept": "application/json",
    }
    assert by_name["bearer"]["config"]["url"].endswith("/readings?access_token=***&units=si")
    assert by_name["basic"]["config"]["url"] == f"http://reader:***@{vendor}/readings"
    assert by_name["basic"]["config"]["headers"] == {"x-api-key": "***"}
    assert by_name["flaky"]["health"]["details"]["url"].startswith("http://reader:***@")
    assert "HTTP 500" in by_name["flaky"]["health"]["last_error"]
    for path in ("/health", "/api/health", "/api/sources/flaky", "/api/sources/flaky/health"):
        answer = httpx.get(f"{ingest.url}{path}", headers=auth)
        assert answer.status_code in (200, 503), (path, answer.text)  # 503: flaky is failing
        assert_no_secret(answer.text, path)
    assert_no_secret(json.dumps(client.sources()), "IngestClient.sources")

    cli = subprocess.run(
        [sys.executable, "-m", "workbench", "sources", "list"],
        env=child_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert "bearer" in cli.stdout and "reader:***@" in cli.stdout
    assert_no_secret(cli.stdout + cli.stderr, "workbench sources list")

    topics = {row["topic"] for row in read_bronze(settings).to_pylist()}
    assert topics and all("***" in topic for topic in topics)  # bronze keeps masked URLs
    assert_no_secret(json.dumps(sorted(topics)), "bronze topics")

    ingest.stop()  # flushes its log
    log = ingest.log.read_text()
    assert "poll failed source=flaky" in log  # the failure is logged...
    assert_no_secret(log, "the ingest log")  # ...without the URL's credentials


def test_a_config_echoed_back_masked_keeps_its_secrets(
    settings: Settings, ingest: IngestProcess, client: IngestClient, vendor: str
) -> None:
    client.create("bearer", "rest_poll", configs(vendor)["bearer"])
    [listed] = [s for s in client.sources() if s["name"] == "bearer"]
    edited = {**listed["config"], "interval_seconds": 0.3}  # masks sent back unchanged
    updated = client.update("bearer", edited)
    assert updated["config"]["interval_seconds"] == 0.3
    assert_no_secret(json.dumps(updated), "update answer")

    catalog = Catalog(settings.catalog.url)
    try:
        [stored] = [s for s in catalog.list_sources() if s["name"] == "bearer"]
    finally:
        catalog.close()
    assert stored["config"] == {**configs(vendor)["bearer"], "interval_seconds": 0.3}

    before = authorized("bearer")  # the restarted poller still authenticates
    wait_for(lambda: authorized("bearer") >= before + 2, what="polls after the update")
    assert client.health("bearer").details["last_status"] == 200

    # A mask with nothing stored behind it is refused rather than stored as the secret.
    with pytest.raises(ConfigError, match="no stored secret"):
        client.create("copy", "rest_poll", edited)


def test_error_answers_never_quote_a_secret(settings: Settings, ingest: IngestProcess) -> None:
    auth = auth_headers(settings)
    short = httpx.post(
        f"{ingest.url}/api/sources",
        json={"name": "push", "type": "rest_push", "config": {"token": "short-secret"}},
        headers=auth,
    )
    assert short.status_code == 422 and "too short" in short.text
    assert "short-secret" not in short.text
    # A body FastAPI itself rejects (no type): its answer names the problem, not the input.
    untyped = httpx.post(
        f"{ingest.url}/api/sources",
        json={"name": "x", "config": {"headers": {"Authorization": f"Bearer {BEARER}"}}},
        headers=auth,
    )
    assert untyped.status_code == 422 and "type" in untyped.text
    assert_no_secret(untyped.text, "a rejected request")
