"""Errors cross HTTP unchanged: one status per class, the code and fields in the body, and the
client rebuilds the class the service raised (a transient one stays transient)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from tests.fixtures.services import make_settings
from workbench.api.http_errors import install_error_handlers
from workbench.catalog.store import Catalog
from workbench.client.answers import answer_error
from workbench.client.credentials import auth_headers
from workbench.core.errors import (
    CatalogError,
    ComputationError,
    ConfigError,
    EngineError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
    StorageError,
    WorkbenchError,
    is_transient,
)

RAISED: dict[str, WorkbenchError] = {
    "engine": EngineError("stream gold did not stop cleanly", query="gold"),
    "storage": StorageError("store down", path="bronze/x"),
    "unavailable": ServiceUnavailableError("broker away"),
    "config": ConfigError("bad setting", setting="lake.root"),
    "computation": ComputationError("bad SQL", computation="hot"),
    "catalog": CatalogError("duplicate", name="hot"),
    "missing": NotFoundError("no stream named 'x'", stream="x"),
}


class Body(BaseModel):
    count: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{which}")
    def raise_(which: str) -> None:
        raise RAISED[which]

    @app.get("/bug")
    def bug() -> None:
        raise ZeroDivisionError("division by zero")

    @app.get("/leak/{how}")
    def leak(how: str) -> None:
        url = "https://ana:s3cret-pw@api.example.test/v1?api_key=k3y-value&page=2"
        if how == "workbench":
            raise ConfigError(f"cannot poll {url}", url=url, header="Bearer t0ken-value-123")
        raise RuntimeError(f"GET {url} failed with Authorization: Bearer t0ken-value-123")

    @app.post("/body")
    def body(_body: Body) -> None:
        return None

    return app


@pytest.mark.parametrize("which", sorted(RAISED))
def test_the_client_rebuilds_the_class_with_its_code_and_fields(which: str) -> None:
    raised = RAISED[which]
    response = TestClient(_app()).get(f"/raise/{which}")
    assert response.status_code == type(raised).status
    assert response.json() == raised.to_dict()
    rebuilt = answer_error(response)
    assert type(rebuilt) is type(raised)
    assert (rebuilt.message, rebuilt.fields) == (raised.message, raised.fields)
    assert is_transient(rebuilt) == is_transient(raised)


def test_a_transient_engine_error_is_a_503_not_a_conflict() -> None:
    response = TestClient(_app()).get("/raise/engine")
    assert response.status_code == 503
    assert isinstance(answer_error(response), EngineError)


def test_a_validation_error_is_an_invalid_request_with_its_problems() -> None:
    response = TestClient(_app()).post("/body", json={"count": "many"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    rebuilt = answer_error(response)
    assert isinstance(rebuilt, InvalidRequestError) and isinstance(rebuilt, ConfigError)
    [problem] = rebuilt.fields["problems"]
    assert problem["loc"] == ["body", "count"]
    assert "count" in rebuilt.message


def test_an_unexpected_exception_is_an_internal_error() -> None:
    response = TestClient(_app(), raise_server_exceptions=False).get("/bug")
    assert response.status_code == 500
    rebuilt = answer_error(response)
    assert isinstance(rebuilt, InternalError) and "ZeroDivisionError" in rebuilt.message


@pytest.mark.parametrize("how", ["workbench", "unexpected"])
def test_no_error_answer_or_log_line_carries_a_credential(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    response = TestClient(_app(), raise_server_exceptions=False).get(f"/leak/{how}")
    assert response.status_code in (422, 500)
    shown = response.text + caplog.text
    for secret in ("s3cret-pw", "k3y-value", "t0ken-value-123"):
        assert secret not in shown
    assert "api.example.test" in response.text and "page=2" in response.text


def test_an_answer_without_a_code_falls_back_to_its_status() -> None:
    app = FastAPI()
    install_error_handlers(app)
    response = TestClient(app).get("/no/such/route")  # Starlette's own {"detail": ...}
    assert response.status_code == 404
    rebuilt = answer_error(response)
    assert isinstance(rebuilt, NotFoundError) and rebuilt.message == "Not Found"


def test_both_services_answer_with_the_shared_table(tmp_path: Path) -> None:
    from workbench.api.engine_app import build_engine_app
    from workbench.api.ingest_app import build_ingest_app
    from workbench.metrics.engine import EngineMetrics
    from workbench.streams.supervisor import StreamManager

    settings = make_settings(tmp_path)
    catalog = Catalog(settings.catalog.url)
    app = build_engine_app(settings, StreamManager(), EngineMetrics(pod="test"), catalog)
    engine = TestClient(app, headers=auth_headers(settings))
    missing = engine.post("/api/streams/nope/stop")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert missing.json()["fields"] == {"stream": "nope"}
    invalid = engine.post("/api/users", json={"name": "x"})
    assert isinstance(answer_error(invalid), InvalidRequestError)
    catalog.close()

    # no lifespan: nothing is started
    ingest = TestClient(build_ingest_app(settings), headers=auth_headers(settings))
    push = ingest.post("/api/push/nope", content=b"{}")
    assert push.status_code == 404 and push.json()["code"] == "not_found"
    assert isinstance(answer_error(push), NotFoundError)
