"""The REST poller: fetch an API on an interval and land each record once.

Each poll sends ``If-None-Match`` / ``If-Modified-Since`` from the last answer, follows the
``records_path`` (``data.items``) to the records, and skips records whose key was already landed.
A record's key is the value at ``record_key`` (a dot path) or, without one, a hash of the record;
its ``message_id`` derives from the URL and the key, so even a duplicate that slipped through
(a crash between write and bookkeeping) carries the same identity and silver can drop it.

Targets on loopback, link-local, private or otherwise non-public addresses are refused unless the
source sets ``allow_private`` (no SSRF by default). Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import socket
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import httpx

from workbench.connectors.base import Sink, SourceHealth
from workbench.connectors.envelope import Envelope, build_envelopes
from workbench.connectors.registry import ConnectorType, SourceContext
from workbench.core.clock import utcnow
from workbench.core.errors import ConfigError, ServiceUnavailableError, SourceError, error_code
from workbench.core.masking import mask_text, mask_url

log = logging.getLogger(__name__)

SEEN_KEYS_LIMIT = 200_000
"""Keys remembered per source (oldest forgotten first): bounded memory, dedup across polls."""

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "pattern": "^https?://"},
        "method": {"enum": ["GET", "POST"], "default": "GET"},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "sent with every poll; values of secret-looking names are never shown",
        },
        "params": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "body": {"description": "JSON body for POST"},
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"enum": ["bearer", "api_key", "basic"]},
                "token": {"type": "string", "writeOnly": True, "format": "password"},
                "header": {"type": "string", "default": "X-API-Key"},
                "in": {"enum": ["header", "query"], "default": "header"},
                "param": {"type": "string", "default": "api_key"},
                "username": {"type": "string"},
                "password": {"type": "string", "writeOnly": True, "format": "password"},
            },
        },
        "records_path": {"type": "string", "description": "dot path to the records, e.g. data"},
        "record_key": {"type": "string", "description": "dot path of a record's identity"},
        "interval_seconds": {"type": "number", "minimum": 0.1, "default": 30},
        "timeout_seconds": {"type": "number", "minimum": 0.1, "default": 10},
        "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
        "backoff_seconds": {"type": "number", "minimum": 0, "default": 1},
        "allow_private": {"type": "boolean", "default": False},
    },
}


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to a non-public address (unless allowed).

    Raises:
        ConfigError: naming the address and how to allow it deliberately.
    """
    parts = urlsplit(url)
    shown = mask_url(url)  # errors reach API answers and logs: never with the credentials
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"poll url {shown!r} must be http(s)://host/...", url=shown)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as err:
        raise ConfigError(f"cannot resolve {parts.hostname!r}: {err}", url=shown) from err
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ConfigError(
                f"refusing to poll {shown!r}: {parts.hostname} resolves to non-public address "
                f'{address}; set "allow_private": true in the source config if this is intended',
                url=shown,
                address=str(address),
            )


def dig(value: Any, path: str | None) -> Any:
    """Follow a dot path (``data.items``) into parsed JSON; None when absent."""
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


class RestPoller:
    """Polls one API on an interval (its own thread) and feeds new records to the sink."""

    type = "rest_poll"

    def __init__(
        self,
        name: str,
        ingestion_id: str,
        config: dict[str, Any],
        sink: Sink,
        *,
        time_fields: list[str],
    ) -> None:
        self.name = name
        self.ingestion_id = ingestion_id
        self._config = config
        self._sink = sink
        self._time_fields = time_fields
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._received = 0
        self._polls = 0
        self._last_error: str | None = None
        self._last_status: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        check_target(self._config["url"], allow_private=self._config.get("allow_private", False))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"poll-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self._config.get("timeout_seconds", 10) + 5)

    def health(self) -> SourceHealth:
        return SourceHealth(
            name=self.name,
            type=self.type,
            ingestion_id=self.ingestion_id,
            running=self._thread is not None and self._thread.is_alive(),
            connected=self._last_error is None and self._polls > 0,
            received=self._received,
            last_error=self._last_error,
            details={
                "url": mask_url(self._config["url"]),
                "polls": self._polls,
                "last_status": self._last_status,
                "etag": self._etag,
            },
        )

    # -- polling --------------------------------------------------------------------------------

    def _run(self) -> None:
        with httpx.Client(
            timeout=self._config.get("timeout_seconds", 10), follow_redirects=False
        ) as client:
            while not self._stop.is_set():
                try:
                    self.poll_once(client)
                    self._last_error = None
                except Exception as err:  # noqa: BLE001 - one bad poll never stops the source
                    # Shown by /health and logged: an error quoting the URL must not carry
                    # its credentials.
                    self._last_error = mask_text(f"{type(err).__name__}: {err}")
                    log.warning(
                        "poll failed source=%s code=%s error=%s",
                        self.name,
                        error_code(err),
                        self._last_error,
                    )
                self._stop.wait(self._config.get("interval_seconds", 30))

    def poll_once(self, client: httpx.Client) -> int:
        """One poll: fetch, extract, land new records; returns how many were new."""
        cfg = self._config
        check_target(cfg["url"], allow_private=cfg.get("allow_private", False))
        response = self._fetch(client)
        self._polls += 1
        self._last_status = response.status_code
        if response.status_code == 304:
            return 0
        if response.status_code >= 400:
            raise SourceError(
                f"HTTP {response.status_code} from {cfg['url']}",
                url=mask_url(cfg["url"]),
                status=response.status_code,
            )
        records = dig(response.json(), cfg.get("records_path"))
        if records is None:
            raise SourceError(
                f"records_path {cfg.get('records_path')!r} not found in response",
                url=mask_url(cfg["url"]),
                records_path=cfg.get("records_path"),
            )
        if not isinstance(records, list):
            records = [records]
        fresh: list[tuple[str, Any]] = []
        for record in records:
            key = self._key(record)
            if key not in self._seen:
                fresh.append((key, record))
        envelopes: list[Envelope] = []
        now = utcnow()
        # Bronze keeps the URL as the topic (shown by the metadata API): without credentials.
        # Identities derive from it too, so rotating a token in the URL keeps them stable.
        public_url = mask_url(cfg["url"])
        for key, record in fresh:
            body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
            envelopes += build_envelopes(
                body,
                ingestion_id=self.ingestion_id,
                source_type=self.type,
                topic=public_url,
                received_at=now,
                time_fields=self._time_fields,
                message_id=hashlib.blake2b(
                    f"{public_url}\x00{key}".encode(), digest_size=16
                ).hexdigest(),
                meta={"record_key": key},
            )
        if envelopes:
            durable = threading.Event()
            self._sink(envelopes, durable.set)
            # Remember keys and validators only once the records are in bronze: a crash before
            # that re-polls them instead of losing them.
            while not durable.wait(1.0):
                if self._stop.is_set():
                    return 0
        for key, _ in fresh:
            self._remember(key)
        self._etag = response.headers.get("etag", self._etag)
        self._last_modified = response.headers.get("last-modified", self._last_modified)
        self._received += len(fresh)
        return len(fresh)

    def _fetch(self, client: httpx.Client) -> httpx.Response:
        cfg = self._config
        headers = dict(cfg.get("headers") or {})
        params: dict[str, Any] = dict(cfg.get("params") or {})
        auth: httpx.BasicAuth | None = None
        spec = cfg.get("auth") or {}
        if spec.get("type") == "bearer":
            headers["Authorization"] = f"Bearer {spec.get('token', '')}"
        elif spec.get("type") == "api_key":
            if spec.get("in", "header") == "query":
                params[spec.get("param", "api_key")] = spec.get("token", "")
            else:
                headers[spec.get("header", "X-API-Key")] = spec.get("token", "")
        elif spec.get("type") == "basic":
            auth = httpx.BasicAuth(spec.get("username", ""), spec.get("password", ""))
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self._last_modified:
            headers["If-Modified-Since"] = self._last_modified
        attempts = cfg.get("retries", 3) + 1
        backoff = cfg.get("backoff_seconds", 1)
        for attempt in range(attempts):
            try:
                response = client.request(
                    cfg.get("method", "GET"),
                    cfg["url"],
                    headers=headers,
                    # httpx replaces the URL's query with ``params``: merge, so a token or
                    # filter written in the URL is still sent.
                    params=httpx.URL(cfg["url"]).params.merge(params),
                    json=cfg.get("body") if cfg.get("method") == "POST" else None,
                    auth=auth,
                )
                if response.status_code < 500 and response.status_code != 429:
                    return response
                reason = f"HTTP {response.status_code}"
            except httpx.TransportError as err:
                reason = f"{type(err).__name__}: {err}"
            if attempt + 1 < attempts and not self._stop.wait(backoff * 2**attempt):
                log.info(
                    "poll retry source=%s attempt=%s reason=%s",
                    self.name,
                    attempt + 1,
                    mask_text(reason),
                )
        raise ServiceUnavailableError(
            f"giving up after {attempts} attempt(s): {mask_text(reason)}",
            url=mask_url(cfg["url"]),
            attempts=attempts,
        )

    def _key(self, record: Any) -> str:
        path = self._config.get("record_key")
        value = dig(record, path) if path else None
        if value is None:
            text = json.dumps(record, sort_keys=True, separators=(",", ":"))
            return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        return str(value)

    def _remember(self, key: str) -> None:
        self._seen[key] = None
        if len(self._seen) > SEEN_KEYS_LIMIT:
            self._seen.popitem(last=False)


def _build(
    name: str, ingestion_id: str, config: dict[str, Any], context: SourceContext
) -> RestPoller:
    return RestPoller(name, ingestion_id, config, context.sink, time_fields=context.time_fields)


CONNECTOR_TYPE = ConnectorType(
    name="rest_poll",
    config_schema=CONFIG_SCHEMA,
    factory=_build,
    description="Poll an HTTP API on an interval; each record lands once.",
)
