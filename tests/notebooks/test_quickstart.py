"""The quickstart notebook runs top to bottom on the ``workbench`` kernel against a real engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
import pytest

from tests.fixtures.services import ROOT, child_env
from tests.fixtures.stack import SENSORS, Stack, stack_fixture  # noqa: F401  (the engine)
from workbench.catalog.records import Computation
from workbench.kernel.handle import Workbench
from workbench.kernel.install import install_kernelspec
from workbench.widgets.tile import PLOTLY_MIME, build_tile

pytestmark = pytest.mark.spark

NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


@pytest.fixture
def kernel_env(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``workbench`` kernelspec in a temp prefix and the stack's settings in the env.

    papermill starts the kernel from this process, so the kernel inherits this environment.
    """
    prefix = tmp_path / "jupyter-prefix"
    install_kernelspec(prefix=str(prefix))
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    for key, value in child_env(stack.settings).items():
        if key.startswith("WORKBENCH__"):
            monkeypatch.setenv(key, value)
    yield


def _cell(notebook: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if tag in c.metadata.get("tags", []))


def _text(cell: nbformat.NotebookNode) -> str:
    parts: list[str] = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def _traces(cell: nbformat.NotebookNode) -> list[dict[str, Any]]:
    for output in cell.outputs:
        if PLOTLY_MIME in output.get("data", {}):
            figure = output.data[PLOTLY_MIME]
            return list(json.loads(json.dumps(figure))["data"])
    raise AssertionError(f"no plotly figure in outputs: {cell.outputs}")


def test_quickstart_runs_against_the_engine(stack: Stack, kernel_env: None, tmp_path: Path) -> None:
    output = tmp_path / "quickstart.out.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(output),
        parameters={"computation": "sensor_averages", "limit": 12},
        kernel_name="workbench",
        cwd=str(tmp_path),
        progress_bar=False,
        execution_timeout=180,
    )
    notebook = nbformat.read(output, as_version=4)

    status = _text(_cell(notebook, "status"))
    e = stack.settings.engine
    assert f"http://{e.host}:{e.port}" in status
    assert "engine_reachable  True" in status
    assert "sensor_averages" in _text(_cell(notebook, "tables"))

    result = _text(_cell(notebook, "result"))
    assert "FROM gold.sensor_averages WHERE field = 'temperature'" in result
    assert "12 rows (limit 12)" in result  # the limit parameter reached the engine

    # Ordered by window_start: the 12 rows are the first 4 minutes of all three sensors.
    traces = _traces(_cell(notebook, "figure"))
    assert sorted(t["name"] for t in traces) == list(SENSORS)
    assert [len(t["x"]) for t in traces] == [4, 4, 4]

    summary = _text(_cell(notebook, "summary"))
    for sensor, mean in zip(SENSORS, ("21.25", "22.25", "23.25"), strict=True):
        line = next(row for row in summary.splitlines() if sensor in row)
        assert mean in line and "360" in line, line

    tile_outputs = _cell(notebook, "tile").outputs
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in tile_outputs
    )


def test_tile_reads_live_data_and_says_when_empty(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Connect session sets SPARK_CONNECT_MODE_ENABLED for the whole process; scoped to this
    # test it cannot leak into engines that later tests start with a copy of os.environ.
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    wb = Workbench(stack.settings)
    try:
        live = build_tile(
            lambda: wb.engine.run_computation("sensor_averages"),
            wb.computation("sensor_averages"),
            refresh_seconds=15,
            auto_refresh=False,
        )
        assert live.state == "ok", live.message
        assert live.frame is not None and set(live.frame["sensor_id"]) == set(SENSORS)
        assert live.freshness.startswith("data ") and live.freshness.endswith(" old")

        nothing = Computation(
            name="no_rows",
            sql="SELECT window_start, avg_value FROM gold.sensor_averages WHERE field = 'none'",
            tile_type="timeseries",
            tile_config={"x": "window_start", "y": "avg_value"},
        )
        empty = build_tile(
            lambda: wb.engine.query(nothing.sql),
            nothing,
            refresh_seconds=15,
            auto_refresh=False,
        )
        assert empty.state == "empty"
        assert empty.message == "no data yet — is the engine running?"
    finally:
        wb.close()


def test_handle_and_tile_recover_after_an_engine_restart(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")  # see the test above
    wb = Workbench(stack.settings)
    try:
        tile = wb.tile("sensor_averages")
        tile.stop()  # refreshed by hand below
        assert tile.state == "ok" and len(wb.run("sensor_averages")) == 18

        stack.restart_engine()  # the engine forgets every client session

        assert tile.refresh_now() == "ok", tile.message
        assert len(wb.run("sensor_averages")) == 18
        assert wb.sql("SELECT count(*) AS n FROM gold.sensor_averages")["n"][0] == 36
    finally:
        wb.close()
