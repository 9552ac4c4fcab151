"""Every route of both services, tried as an attacker would: no token, forged, revoked and
expired tokens, each role against each route, the scrape token, pushes, docs, sign-in.

The route table is read off the apps themselves (``route_roles``) and must equal the one in
``docs/security.md``: a route added without a role, or documented wrong, fails here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.services import ROOT, make_settings
from workbench.api.auth import REFUSED, route_roles
from workbench.api.engine_app import build_engine_app
from workbench.api.ingest_app import build_ingest_app
from workbench.catalog.store import Catalog
from workbench.catalog.users import ROLES
from workbench.core.settings import Settings
from workbench.metrics.engine import EngineMetrics
from workbench.streams.supervisor import StreamManager

OPEN = {("POST", "/api/login"), ("GET", "/health")}
PUSH = ("POST", "/api/push/{source}")
SAMPLE_PATH = {
    "{name}": "nope",
    "{source}": "http",
    "{action}": "start",
    "{ingestion_id}": "nope",
    "{token_id}": "999999",
    "{tile_id}": "999999",
    "{alert_id}": "999999",
    "{rule_id}": "999999",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Both apps (nothing started: no lifespan, no Spark) over one catalog with a user of
    each role."""
    settings = make_settings(tmp_path_factory.mktemp("routes"))
    catalog = Catalog(settings.catalog.url)
    tokens = {}
    for role in ROLES:
        catalog.add_user(f"a-{role}", role)
        tokens[role] = catalog.issue_token(f"a-{role}").value
    # The query routes are built over stand-ins: a refused request never reaches them.
    queries: Any = SimpleNamespace(service=None, catalog=catalog)
    apps = {
        "ingest": build_ingest_app(settings),
        "engine": build_engine_app(
            settings, StreamManager(), EngineMetrics(pod="t"), catalog, SimpleNamespace(), queries
        ),
    }
    yield SimpleNamespace(settings=settings, catalog=catalog, tokens=tokens, apps=apps)
    catalog.close()


def documented_table() -> dict[tuple[str, str, str], str]:
    """``(service, method, path) -> role`` from the table in docs/security.md."""
    text = (ROOT / "docs" / "security.md").read_text()
    rows = re.findall(r"^\| (ingest|engine) \| `(\w+) ([^`]+)` \| ([^|]+?) \|", text, re.M)
    return {(svc, method, path): role.strip() for svc, method, path, role in rows}


def actual_table(apps: dict[str, FastAPI]) -> dict[tuple[str, str, str], str]:
    return {
        (svc, method, path): role
        for svc, app in apps.items()
        for (method, path), role in route_roles(app).items()
    }


def concrete(path: str) -> str:
    for marker, value in SAMPLE_PATH.items():
        path = path.replace(marker, value)
    return path


def call(app: FastAPI, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    client = TestClient(app, raise_server_exceptions=False)
    return client.request(method, concrete(path), headers=headers, **kw)


def guarded(stack: SimpleNamespace) -> list[tuple[str, str, str, str]]:
    return [
        (svc, method, path, role)
        for (svc, method, path), role in actual_table(stack.apps).items()
        if (method, path) not in OPEN and (method, path) != PUSH
    ]


def test_the_route_table_is_the_documented_one(stack: SimpleNamespace) -> None:
    actual = actual_table(stack.apps)
    assert actual == documented_table()
    opened = {(m, p) for (_svc, m, p), role in actual.items() if role == "open"}
    assert opened == OPEN | {PUSH}  # the push route checks its source's token itself


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer ",
        "Bearer wbt_forged0000000000000000000000000000000000000",
        "Bearer not-even-a-token",
        "Basic YWRtaW46YWRtaW4=",
        "bearer  ",
    ],
)
def test_every_guarded_route_refuses_a_missing_or_forged_token(
    stack: SimpleNamespace, header: str | None
) -> None:
    headers = {"authorization": header} if header is not None else {}
    for svc, method, path, _role in guarded(stack):
        answer = call(stack.apps[svc], method, path, headers=headers)
        assert answer.status_code == 401, (svc, method, path, answer.text)
        body = answer.json()
        assert body["code"] in ("unauthorized",), (path, body)


def test_revoked_and_expired_tokens_are_refused_like_unknown_ones(
    stack: SimpleNamespace,
) -> None:
    catalog: Catalog = stack.catalog
    revoked = catalog.issue_token("a-admin", label="to revoke")
    catalog.revoke_token(revoked.info.id)
    expired = catalog.issue_token("a-admin", label="short", days=1e-9)
    time.sleep(0.01)
    app = stack.apps["engine"]
    answers = [
        call(app, "GET", "/api/streams", token).json()
        for token in (revoked.value, expired.value, "wbt_" + "x" * 43)
    ]
    assert all(a["code"] == "unauthorized" for a in answers)
    assert {a["message"] for a in answers} == {REFUSED}  # no answer tells which it was


def test_each_role_reaches_its_routes_and_no_further(stack: SimpleNamespace) -> None:
    rank = {role: i for i, role in enumerate(ROLES)}
    checked = 0
    for svc, method, path, needed in guarded(stack):
        required = "admin" if needed == "scrape token or admin" else needed
        for role, token in stack.tokens.items():
            answer = call(stack.apps[svc], method, path, token, json={})
            if rank[role] < rank[required]:
                assert answer.status_code == 403, (svc, method, path, role, answer.text)
                body = answer.json()
                assert body["code"] == "forbidden"
                if needed in ROLES:  # says what is needed and what the caller has
                    assert body["fields"]["needs"] == required
                    assert repr(required) in body["message"]
            else:
                assert answer.status_code not in (401, 403), (svc, method, path, role)
            checked += 1
    assert checked > 150


def test_metrics_take_the_scrape_token_or_an_admin(stack: SimpleNamespace) -> None:
    settings: Settings = stack.settings
    assert settings.auth.scrape_token is not None
    scrape = settings.auth.scrape_token.get_secret_value()
    for app in stack.apps.values():
        assert call(app, "GET", "/metrics", scrape).status_code == 200
        assert call(app, "GET", "/metrics", stack.tokens["admin"]).status_code == 200
        assert call(app, "GET", "/metrics", stack.tokens["user"]).status_code == 403
        assert call(app, "GET", "/metrics", scrape[:-1] + "x").status_code == 401
        assert call(app, "GET", "/metrics").status_code == 401


def test_health_says_the_status_word_and_nothing_else(stack: SimpleNamespace) -> None:
    for app in stack.apps.values():
        body = call(app, "GET", "/health").json()
        assert set(body) == {"status"}


def test_api_docs_are_off_unless_enabled_and_then_for_admins_only(
    stack: SimpleNamespace, tmp_path: Path
) -> None:
    for app in stack.apps.values():
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert call(app, "GET", path, stack.tokens["admin"]).status_code == 404
    settings = make_settings(tmp_path, auth={"api_docs": True})
    catalog = Catalog(settings.catalog.url)
    catalog.add_user("docs-admin", "admin")
    catalog.add_user("docs-user", "user")
    admin = catalog.issue_token("docs-admin").value
    user = catalog.issue_token("docs-user").value
    app = build_ingest_app(settings)
    assert call(app, "GET", "/openapi.json").status_code == 401
    assert call(app, "GET", "/openapi.json", user).status_code == 403
    schema = call(app, "GET", "/openapi.json", admin)
    assert schema.status_code == 200 and "/api/sources" in schema.json()["paths"]
    catalog.close()


def test_a_push_source_without_a_token_takes_readings_from_users_only(
    stack: SimpleNamespace,
) -> None:
    app = stack.apps["ingest"]
    body = b'{"sensor_id": "s1", "temperature": 20.5}'
    assert call(app, "POST", "/api/push/http", content=body).status_code == 401
    viewer = call(app, "POST", "/api/push/http", stack.tokens["viewer"], content=body)
    assert viewer.status_code == 403
    # A user passes the gate; a body over the limit then shows it got that far (the service
    # is not started here, so it could not take a real one).
    big = b"x" * (stack.settings.ingest.max_body_bytes + 1)
    user = call(app, "POST", "/api/push/http", stack.tokens["user"], content=big)
    assert user.status_code == 413


def test_sign_in_issues_a_token_and_refuses_alike(stack: SimpleNamespace) -> None:
    catalog: Catalog = stack.catalog
    catalog.add_user("pw-user", "user", password="correct horse battery staple")
    app = stack.apps["engine"]
    good = {"user": "pw-user", "password": "correct horse battery staple", "days": 1}
    issued = call(app, "POST", "/api/login", json=good)
    assert issued.status_code == 201
    token = issued.json()["token"]
    me = call(app, "GET", "/api/me", token).json()
    assert me["user"] == "pw-user" and me["role"] == "user"
    wrong = call(app, "POST", "/api/login", json={**good, "password": "nope"}).json()
    unknown = call(app, "POST", "/api/login", json={**good, "user": "nobody"}).json()
    token_only = call(app, "POST", "/api/login", json={**good, "user": "a-admin"}).json()
    assert wrong == unknown == token_only
    assert wrong["code"] == "unauthorized"
    # The password never comes back, nor the token except in the answer that issued it.
    listed = call(app, "GET", "/api/tokens", token).text
    assert token not in listed and "correct horse" not in listed


def test_users_see_and_revoke_only_their_own_tokens(stack: SimpleNamespace) -> None:
    catalog: Catalog = stack.catalog
    catalog.add_user("owner", "user")
    catalog.add_user("other", "user")
    mine = catalog.issue_token("owner")
    theirs = catalog.issue_token("other")
    app = stack.apps["engine"]
    listed = call(app, "GET", "/api/tokens", mine.value).json()
    assert {t["user"] for t in listed} == {"owner"}
    refused = call(app, "DELETE", f"/api/tokens/{theirs.info.id}", mine.value)
    assert refused.status_code == 404  # as if it did not exist
    assert call(app, "GET", "/api/me", theirs.value).status_code == 200
    own = call(app, "DELETE", f"/api/tokens/{mine.info.id}", mine.value)
    assert own.status_code == 200
    assert call(app, "GET", "/api/me", mine.value).status_code == 401


def test_an_admin_cannot_delete_themselves(stack: SimpleNamespace) -> None:
    app = stack.apps["engine"]
    answer = call(app, "DELETE", "/api/users/a-admin", stack.tokens["admin"])
    assert answer.status_code == 403
