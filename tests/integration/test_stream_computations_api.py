"""Stream computations through a real engine process: add, edit, disable and delete over
HTTP while the engine runs, with the results read back through Spark Connect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.engine import start_engine, stop_engine
from tests.fixtures.services import make_settings
from tests.integration.conftest import wait_for
from tests.spark.conftest import WriteBronze, bronze_row, write_bronze  # noqa: F401
from workbench.client.credentials import auth_headers
from workbench.core.errors import CatalogError, ComputationError, NotFoundError

pytestmark = pytest.mark.spark

HOT = (
    "SELECT sensor_id, event_time, numeric['temperature'] AS temperature, sensitivity "
    "FROM silver WHERE numeric['temperature'] > 15"
)


def test_stream_computation_lifecycle_over_http(
    tmp_path: Path,
    write_bronze: WriteBronze,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workbench.client.engine_client import EngineClient
    from workbench.spark.session import connect_session

    # A Connect session sets SPARK_CONNECT_MODE_ENABLED for the whole process; scoped to this
    # test it cannot turn the classic sessions of later tests into Connect ones.
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")

    settings = make_settings(tmp_path, engine={"enrichment_trigger_seconds": 0.5})
    proc = start_engine(settings)
    client = EngineClient(settings)
    sessions: list[Any] = []
    base = f"http://{settings.engine.host}:{settings.engine.port}"
    auth = auth_headers(settings)
    try:
        # Silver fills while the computation is checked and started.
        write_bronze(
            settings,
            "mqtt_demo_0001",
            [
                bronze_row(
                    f"m{i}", {"sensor_id": "s1", "temperature": t, "ts": f"2026-11-26T10:00:0{i}Z"}
                )
                for i, t in enumerate([10, 20, 30])
            ],
        )
        created = client.create_stream_computation("hot", HOT, description="hot readings")
        assert (created["version"], created["table"], created["enabled"]) == (1, "gold.hot", True)
        assert created["query"]["name"] == "computation:hot"
        assert created["query"]["state"] == "running"

        # Refused before anything runs, with the engine's reason.
        with pytest.raises(ComputationError, match="add `sensitivity` to the SELECT and GROUP BY"):
            client.create_stream_computation("nosens", "SELECT sensor_id FROM silver")
        answer = httpx.post(
            f"{base}/api/stream-computations",
            json={
                "name": "agg",
                "sql": "SELECT sensitivity, count(*) AS n FROM silver GROUP BY sensitivity",
            },
            headers=auth,
        )
        assert answer.status_code == 422
        assert "cannot run as a stream in append mode" in answer.json()["message"]
        with pytest.raises(ComputationError, match="cannot name the table"):
            client.create_stream_computation("bad-name", HOT)
        with pytest.raises(CatalogError, match="exists"):
            client.create_stream_computation("HOT", HOT)  # table names ignore case
        assert [c["name"] for c in client.stream_computations()] == ["hot"]

        spark = connect_session(settings)
        sessions.append(spark)

        def hot_rows() -> list[Any]:
            return sorted(r.temperature for r in spark.sql("SELECT * FROM gold.hot").collect())

        wait_for(lambda: hot_rows() == [20.0, 30.0], timeout=40, what="gold.hot rows")
        # Counted after the commit that made the rows visible: the count follows shortly.
        wait_for(lambda: client.stream_computation("hot")["rows_written"] == 2, what="count")
        assert client.stream_computation("hot")["last_batch_id"] is not None
        queries = {q["name"] for q in httpx.get(f"{base}/status", headers=auth).json()["queries"]}
        assert "computation:hot" in queries
        # Its batches are in the engine's batch metrics, labelled with its query.
        metrics = httpx.get(f"{base}/metrics", headers=auth).text
        assert any(
            line.startswith("spark_batch_processing_latency_seconds_count{")
            and 'query="computation:hot"' in line
            and float(line.split()[-1]) >= 1
            for line in metrics.splitlines()
        )

        # New SQL: version 2 starts over on all of silver; no version-1 rows stay.
        edited = client.update_stream_computation("hot", sql=HOT.replace("> 15", "> 25"))
        assert edited["version"] == 2 and edited["description"] == "hot readings"
        wait_for(lambda: hot_rows() == [30.0], timeout=30, what="gold.hot recomputed")

        disabled = client.update_stream_computation("hot", enabled=False)
        assert disabled["query"] is None and disabled["version"] == 2
        queries = {q["name"] for q in httpx.get(f"{base}/status", headers=auth).json()["queries"]}
        assert "computation:hot" not in queries
        assert hot_rows() == [30.0]  # the table stays while disabled

        client.delete_stream_computation("hot")
        with pytest.raises(NotFoundError, match="no stream computation named 'hot'"):
            client.stream_computation("hot")
        assert spark.sql("SHOW TABLES IN gold LIKE 'hot'").count() == 0
        assert not Path(settings.lake.gold("hot")).exists()
    finally:
        # A Connect session left open stays the process's default one, bound to this engine:
        # a later test's getOrCreate would get it and hang on the stopped engine.
        for session in sessions:
            session.stop()
        client.close()
        assert stop_engine(proc) == 0, (tmp_path / "engine.log").read_text()[-3000:]
