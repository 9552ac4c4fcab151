"""The push route on a running ingest app: who may push is decided on every request, while
the source itself may come from a read of at most two seconds ago."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from fastapi.testclient import TestClient

from tests.fixtures.services import make_settings
from workbench.api.ingest_app import build_ingest_app
from workbench.catalog.store import Catalog
from workbench.ingest import sources

NDJSON = {"content-type": "application/x-ndjson"}
BODY = b'{"sensor_id":"s1","seq":1,"v":1}\n\n{"sensor_id":"s2","seq":1,"v":2}\n'


def bearer(token: str) -> dict[str, str]:
    return {**NDJSON, "authorization": f"Bearer {token}"}


def test_revoked_tokens_and_deleted_users_are_refused_at_the_next_push(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    app = build_ingest_app(settings)
    # Another connection to the catalog, as the CLI in another process has.
    catalog = Catalog(settings.catalog.url)
    catalog.add_user("pusher", "user")
    first, second = catalog.issue_token("pusher"), catalog.issue_token("pusher")
    with TestClient(app) as client:
        ok = client.post("/api/push/http", content=BODY, headers=bearer(first.value))
        assert ok.status_code == 200, ok.text
        answer = ok.json()
        assert (answer["accepted"], answer["flagged"]) == (2, 0)
        assert [r["message_id"].rsplit(":", 1)[1] for r in answer["records"]] == ["0", "2"]
        catalog.revoke_token(first.info.id)
        again = client.post("/api/push/http", content=BODY, headers=bearer(first.value))
        assert again.status_code == 401 and again.json()["code"] == "unauthorized"
        assert client.post("/api/push/http", content=BODY, headers=bearer(second.value)).is_success
        catalog.delete_user("pusher")
        gone = client.post("/api/push/http", content=BODY, headers=bearer(second.value))
        assert gone.status_code == 401
        assert client.post("/api/push/http", content=BODY, headers=NDJSON).status_code == 401
    catalog.close()
    table = ds.dataset(Path(settings.lake.root) / "bronze", format="parquet").to_table()
    assert table.num_rows == 4  # the two accepted pushes, durable before their answers


def test_a_source_changed_through_the_api_applies_to_the_next_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    app = build_ingest_app(settings)
    catalog = Catalog(settings.catalog.url)
    catalog.add_user("boss", "admin")
    admin = catalog.issue_token("boss").value
    with TestClient(app) as client:
        assert client.post("/api/push/http", content=BODY, headers=bearer(admin)).is_success
        secret = "s" * 20
        as_admin = {"authorization": f"Bearer {admin}"}
        changed = client.put(
            "/api/sources/http", json={"config": {"token": secret}}, headers=as_admin
        )
        assert changed.status_code == 200, changed.text
        # The source's own token now, at once: the API token no longer fits its header.
        assert client.post("/api/push/http", content=BODY, headers=bearer(admin)).status_code == 401
        assert client.post("/api/push/http", content=BODY, headers=bearer(secret)).is_success
        assert client.post("/api/sources/http/stop", headers=as_admin).is_success
        stopped = client.post("/api/push/http", content=BODY, headers=bearer(secret))
        assert stopped.status_code >= 400 and "stopped" in json.dumps(stopped.json())
        # A change made in the catalog by another process shows once the read is older than
        # PUSH_SOURCE_SECONDS (here: at once).
        monkeypatch.setattr(sources, "PUSH_SOURCE_SECONDS", 0.0)
        catalog.set_source_enabled("http", True)
        assert client.post("/api/push/http", content=BODY, headers=bearer(secret)).is_success
    catalog.close()
