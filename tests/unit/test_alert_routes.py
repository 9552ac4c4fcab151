"""The alert routes over a real catalog: who sees which alert, who may acknowledge it, and
the alert-rule routes (the gold stream's side is tested on Spark in tests/spark)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.services import make_settings
from workbench.api.engine_app import build_engine_app
from workbench.catalog.records import AlertObservation, Device
from workbench.catalog.store import Catalog
from workbench.catalog.users import ROLES
from workbench.metrics.engine import EngineMetrics
from workbench.streams.supervisor import StreamManager

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def observation(rule: int, device: str, label: str) -> AlertObservation:
    return AlertObservation(rule, device, "s1", T0, True, 31.5, label)


@pytest.fixture
def engine(tmp_path: Any) -> Iterator[SimpleNamespace]:
    settings = make_settings(tmp_path)
    catalog = Catalog(settings.catalog.url)
    tokens = {}
    for role in ROLES:
        catalog.add_user(f"a-{role}", role)
        tokens[role] = catalog.issue_token(f"a-{role}").value
    catalog.save_device(Device("lab-public", sensitivity="public"))
    catalog.save_device(Device("lab-secret", sensitivity="confidential"))
    rule = catalog.add_alert_rule("too hot", "temperature", "gt", 30)
    catalog.apply_alert_observations(
        [
            observation(rule, "lab-public", "public"),
            observation(rule, "lab-secret", "public"),  # its device's label is what counts
            observation(rule, "unregistered", "public"),  # unregistered data is internal
        ]
    )
    queries: Any = SimpleNamespace(service=None, catalog=catalog)
    app = build_engine_app(
        settings, StreamManager(), EngineMetrics(pod="t"), catalog, SimpleNamespace(), queries
    )
    yield SimpleNamespace(client=TestClient(app), tokens=tokens, catalog=catalog, rule=rule)
    catalog.close()


def call(engine: SimpleNamespace, role: str, method: str, path: str, **kw: Any) -> Any:
    headers = {"authorization": f"Bearer {engine.tokens[role]}"}
    return engine.client.request(method, path, headers=headers, **kw)


def ids_by_device(engine: SimpleNamespace) -> dict[str, int]:
    return {a.ingestion_id: a.id for a in engine.catalog.list_alert_states()}


@pytest.mark.parametrize(
    ("role", "seen", "hidden"),
    [
        ("viewer", ["lab-public"], 2),
        ("user", ["lab-public", "unregistered"], 1),
        ("admin", ["lab-public", "lab-secret", "unregistered"], 0),
    ],
)
def test_each_role_sees_the_alerts_within_its_clearance(
    engine: SimpleNamespace, role: str, seen: list[str], hidden: int
) -> None:
    answer = call(engine, role, "GET", "/api/alerts")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sorted(a["ingestion_id"] for a in body["alerts"]) == seen
    assert body["hidden"] == hidden
    assert {a["status"] for a in body["alerts"]} == {"firing"}
    assert all(a["rule"] == "too hot" for a in body["alerts"])


def test_a_device_relabelled_higher_hides_its_alert_at_once(engine: SimpleNamespace) -> None:
    engine.catalog.save_device(Device("lab-public", sensitivity="restricted"))
    body = call(engine, "user", "GET", "/api/alerts").json()
    assert [a["ingestion_id"] for a in body["alerts"]] == ["unregistered"]


def test_a_user_acknowledges_and_the_token_names_who(engine: SimpleNamespace) -> None:
    alert_id = ids_by_device(engine)["lab-public"]
    assert call(engine, "viewer", "POST", f"/api/alerts/{alert_id}/ack").status_code == 403
    answer = call(engine, "user", "POST", f"/api/alerts/{alert_id}/ack", json={"user": "mallory"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["acknowledged_by"] == "a-user"  # from the token, never from the body
    listed = call(engine, "viewer", "GET", "/api/alerts").json()["alerts"]
    assert listed[0]["acknowledged_by"] == "a-user" and listed[0]["acknowledged_at"]


def test_an_alert_above_the_callers_clearance_is_not_found(engine: SimpleNamespace) -> None:
    secret = ids_by_device(engine)["lab-secret"]
    answer = call(engine, "user", "POST", f"/api/alerts/{secret}/ack")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert engine.catalog.get_alert_state(secret).acknowledged_by is None
    assert call(engine, "user", "POST", "/api/alerts/424242/ack").status_code == 404
    bad = call(engine, "viewer", "GET", "/api/alerts", params={"status": "open"})
    assert bad.status_code == 422 and "use one of firing, resolved" in bad.json()["message"]


def test_alert_rules_are_added_by_users_and_deleted_by_admins(engine: SimpleNamespace) -> None:
    body = {"name": "too cold", "field": "temperature", "op": "lt", "threshold": -5}
    assert call(engine, "viewer", "POST", "/api/alert-rules", json=body).status_code == 403
    added = call(engine, "user", "POST", "/api/alert-rules", json=body)
    assert added.status_code == 201, added.text
    rule = added.json()
    assert (rule["name"], rule["op"], rule["threshold"]) == ("too cold", "lt", -5.0)
    wrong = call(engine, "user", "POST", "/api/alert-rules", json={**body, "op": "between"})
    assert wrong.status_code == 422
    names = [r["name"] for r in call(engine, "user", "GET", "/api/alert-rules").json()]
    assert names == ["too hot", "too cold"]

    path = f"/api/alert-rules/{engine.rule}"
    assert call(engine, "user", "DELETE", path).status_code == 403
    assert call(engine, "admin", "DELETE", path).status_code == 200
    assert engine.catalog.list_alert_states() == []  # its alerts went with it
    assert call(engine, "admin", "DELETE", path).status_code == 404
