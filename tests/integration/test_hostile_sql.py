"""Hostile SQL and out-of-clearance reads against a running engine, through every door a user
has: the HTTP API, ``wb.sql``, ``%%sql`` in a real kernel, saved computations and tiles, and
``workbench sql``.

The statements are the query service's own hostile list (tests/spark/test_query_service.py):
each must come back refused with a clear message and no rows, while the canaries (the tables
the engine serves, their row counts, a directory a statement would write) show nothing ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.fixtures.services import ROOT, child_env
from tests.fixtures.stack import (  # noqa: F401  (stack_fixture: the module-scoped engine)
    SECRET_VALUE,
    Stack,
    label_lab_devices,
    stack_fixture,
)
from tests.spark.test_query_service import HOSTILE
from workbench.catalog.records import AlertObservation
from workbench.catalog.store import Catalog
from workbench.core.errors import ComputationError
from workbench.core.settings import Settings
from workbench.kernel.handle import Workbench
from workbench.kernel.install import KERNEL_NAME, install_kernelspec

pytestmark = pytest.mark.spark

IDS = [h[0] for h in HOSTILE]
REFUSAL_CODES = ("query_refused", "computation_error")
# The kernel path is slower per statement: one of each kind of attack.
KERNEL_CASES = [
    h
    for h in HOSTILE
    if h[0]
    in {
        "nested-comment-hides-drop",
        "cte-insert",
        "cte-insert-overwrite-directory",
        "text-file",
        "reflect-getenv",
        "range-exhaustion",
        "statement-after-query",
        "set-conf",
        "unknown-table",
        "sequence-memory",
    }
]


@dataclass
class Access:
    """The stack, the tokens of its users, and where hostile statements would write."""

    stack: Stack
    admin: str
    user: str
    viewer: str
    scratch: Path
    lab_tile: int

    @property
    def url(self) -> str:
        e = self.stack.settings.engine
        return f"http://{e.host}:{e.port}"

    def settings(self, token: str) -> Settings:
        """The stack's settings holding ``token`` instead of the admin's."""
        base = self.stack.settings
        auth = base.auth.model_copy(update={"token": SecretStr(token)})
        return base.model_copy(update={"auth": auth})

    def http(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {token}"}, timeout=120
        )

    def text(self, case: str, sql: str) -> tuple[str, Path]:
        """The statement with its placeholders filled, and the directory it would write."""
        out = self.scratch / f"out-{case}"
        return sql.format(out=out, silver=self.stack.settings.lake.silver_readings), out


@pytest.fixture(scope="module")
def access(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Access:
    """A user and a viewer; ``demo-sensors`` public and ``secret-lab`` confidential, with one
    gold row; the computation ``lab_vault`` over it and its tile on the demo dashboard."""
    tokens = label_lab_devices(stack, {"ulla": "user", "vera": "viewer"})
    user, viewer = tokens["ulla"], tokens["vera"]
    assert stack.settings.auth.token is not None
    admin = stack.settings.auth.token.get_secret_value()
    scratch = tmp_path_factory.mktemp("hostile-out")
    made = Access(stack, admin, user, viewer, scratch, lab_tile=0)
    with made.http(admin) as http:
        body = {
            "sql": "SELECT sensor_id, avg_value FROM gold.sensor_averages "
            "WHERE ingestion_id = 'secret-lab'",
            "tile_type": "table",
        }
        http.put("/api/computations/lab_vault", json=body).raise_for_status()
        tile = {"title": "Vault", "computation": "lab_vault", "viz": "table", "y": 20}
        answer = http.post("/api/dashboards/sensors/tiles", json=tile)
        assert answer.status_code == 201, answer.text
        made.lab_tile = int(answer.json()["id"])
    return made


def canaries(access: Access) -> dict[str, Any]:
    """What a statement that ran would have changed: the tables served, their rows, the
    computations saved."""
    with access.http(access.admin) as http:
        tables = sorted(t["table"] for t in http.get("/api/tables").raise_for_status().json())
        counts = http.post(
            "/api/query",
            json={
                "sql": "SELECT (SELECT count(*) FROM gold.sensor_averages) AS gold, "
                "(SELECT count(*) FROM silver.readings) AS silver"
            },
        )
        assert counts.status_code == 200, counts.text
        computations = sorted(c["name"] for c in http.get("/api/computations").json())
    return {"tables": tables, "rows": counts.json()["rows"], "computations": computations}


@pytest.fixture(scope="module")
def before(access: Access) -> dict[str, Any]:
    seen = canaries(access)
    assert {"silver.readings", "gold.sensor_averages", "devices"} <= set(seen["tables"])
    return seen


def assert_untouched(access: Access, before: dict[str, Any], out: Path) -> None:
    assert canaries(access) == before
    assert not out.exists()


# -- (a) the HTTP API ---------------------------------------------------------------------


@pytest.mark.parametrize(("case", "sql", "says"), HOSTILE, ids=IDS)
def test_the_api_refuses_hostile_sql(
    access: Access, before: dict[str, Any], case: str, sql: str, says: str
) -> None:
    text, out = access.text(case, sql)
    with access.http(access.user) as http:
        answer = http.post("/api/query", json={"sql": text})
        checked = http.post("/api/query/check", json={"sql": text})
    for refused in (answer, checked):
        assert 400 <= refused.status_code < 500 and refused.status_code not in (401, 403)
        body = refused.json()
        assert body["code"] in REFUSAL_CODES, body
        assert says in body["message"] and body["message"].strip(), body
        assert "rows" not in body and "columns" not in body
        assert "root:" not in refused.text  # no line of /etc/passwd came back
    assert_untouched(access, before, out)


# -- (b) wb.sql in this process --------------------------------------------------------


@pytest.mark.parametrize(("case", "sql", "says"), HOSTILE, ids=IDS)
def test_wb_sql_refuses_hostile_sql(
    access: Access, before: dict[str, Any], case: str, sql: str, says: str
) -> None:
    text, out = access.text(case, sql)
    wb = Workbench(access.settings(access.user))
    try:
        with pytest.raises(ComputationError) as refused:
            wb.sql(text)
        assert says in refused.value.message
        assert refused.value.code in REFUSAL_CODES
    finally:
        wb.close()
    assert_untouched(access, before, out)


# -- (c) %%sql in a real kernel ----------------------------------------------------------


class Kernel:
    """A running ``workbench`` kernel and a client on it."""

    def __init__(self, manager: Any, client: Any) -> None:
        self.manager, self.client = manager, client

    def run(self, code: str) -> list[dict[str, Any]]:
        """Execute ``code``; every output message (stream, display, result, error)."""
        outputs: list[dict[str, Any]] = []

        def keep(msg: dict[str, Any]) -> None:
            kind = msg["header"]["msg_type"]
            if kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append({"type": kind, **msg["content"]})

        reply = self.client.execute_interactive(code, timeout=120, output_hook=keep)
        assert reply["content"]["status"] in ("ok", "error"), reply
        return outputs


@pytest.fixture(scope="module")
def kernel(access: Access, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """The ``workbench`` kernelspec installed in a temp prefix, started with the user's
    settings in its environment (as ``workbench up`` hands them to JupyterLab)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    install_kernelspec(prefix=str(prefix))
    specs = KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    manager.start_kernel(env=child_env(access.settings(access.user)), cwd=str(prefix))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        # Drain the start-up chatter so the first test reads only its own outputs.
        while True:
            try:
                client.get_iopub_msg(timeout=1)
            except Empty:
                break
        yield Kernel(manager, client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _stream(outputs: list[dict[str, Any]]) -> str:
    return "".join(o.get("text", "") for o in outputs if o["type"] == "stream")


def test_the_kernel_runs_allowed_sql(kernel: Kernel) -> None:
    # The control: the same magic, the same token, a query it may run.
    outputs = kernel.run("%%sql\nSELECT 1 AS one")
    kinds = [o["type"] for o in outputs]
    assert "error" not in kinds, outputs
    assert "execute_result" in kinds and "public" in json.dumps(outputs)


@pytest.mark.parametrize(("case", "sql", "says"), KERNEL_CASES, ids=[h[0] for h in KERNEL_CASES])
def test_the_sql_magic_refuses_hostile_sql(
    access: Access, before: dict[str, Any], kernel: Kernel, case: str, sql: str, says: str
) -> None:
    text, out = access.text(case, sql)
    outputs = kernel.run(f"%%sql -o leaked\n{text}")
    # Printed text only: no traceback, no table, no badge.
    assert outputs and {o["type"] for o in outputs} == {"stream"}, outputs
    printed = _stream(outputs)
    assert printed.startswith("refused: ") and says in printed, printed
    # Nothing was stored under -o either.
    assert "False" in _stream(kernel.run("print('leaked' in globals())"))
    assert_untouched(access, before, out)


# -- (d) saved computations and tiles ---------------------------------------------------


@pytest.mark.parametrize(("case", "sql", "says"), HOSTILE, ids=IDS)
def test_hostile_sql_cannot_be_saved_or_put_on_a_tile(
    access: Access, before: dict[str, Any], case: str, sql: str, says: str
) -> None:
    text, out = access.text(case, sql)
    name = f"pwned_{case.replace('-', '_')}"
    with access.http(access.user) as http:
        saved = http.put(f"/api/computations/{name}", json={"sql": text})
        assert 400 <= saved.status_code < 500, saved.text
        assert saved.json()["code"] in REFUSAL_CODES and says in saved.json()["message"]
        assert http.get(f"/api/computations/{name}").status_code == 404
        tile = {"title": "pwned", "computation": name, "viz": "table"}
        placed = http.post("/api/dashboards/sensors/tiles", json=tile)
        assert placed.status_code == 404 and name in placed.json()["message"], placed.text
        # Nor can an existing computation be turned into one.
        over = http.put("/api/computations/sensor_averages", json={"sql": text})
        assert 400 <= over.status_code < 500, over.text
        stored = http.get("/api/computations/sensor_averages").json()
        board = http.get("/api/dashboards/sensors").json()
    assert stored["sql"].startswith("SELECT window_start, sensor_id, field, avg_value")
    assert "pwned" not in {t["title"] for t in board["tiles"]}
    assert_untouched(access, before, out)


# -- reads above the caller's clearance ------------------------------------------------


def _assert_denied_names_the_device(body: dict[str, Any], clearance: str) -> None:
    assert body["code"] == "sensitivity_denied", body
    fields = body["fields"]
    assert fields["device"] == "secret-lab" and fields["label"] == "confidential"
    assert fields["clearance"] == clearance and fields["needs"] == "admin"
    message = body["message"]
    assert "'secret-lab' is 'confidential'" in message and "'admin'" in message
    assert str(SECRET_VALUE) not in json.dumps(body) and "vault-1" not in json.dumps(body)


def test_a_viewer_asking_a_confidential_tile_is_denied_with_the_reason(access: Access) -> None:
    with access.http(access.viewer) as http:
        for _ in range(2):  # the derivation and its cached denial say the same
            denied = http.get(f"/api/tiles/{access.lab_tile}/data")
            assert denied.status_code == 403, denied.text
            _assert_denied_names_the_device(denied.json(), "public")
            assert "rows" not in denied.json()
        # The demo's own tile reads every device, the confidential one included.
        board = http.get("/api/dashboards/sensors").json()
        averages = next(t for t in board["tiles"] if t["computation"] == "sensor_averages")
        every = http.get(f"/api/tiles/{averages['id']}/data")
        assert every.status_code == 403
        _assert_denied_names_the_device(every.json(), "public")
    with access.http(access.admin) as http:  # the control: an admin sees the row
        seen = http.get(f"/api/tiles/{access.lab_tile}/data")
        assert seen.status_code == 200 and seen.json()["rows"] == [["vault-1", SECRET_VALUE]]


def workbench_sql(access: Access, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return workbench_cli(access, token, "sql", *args)


def workbench_cli(access: Access, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        env=child_env(access.settings(token)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_prints_the_refusal_and_exits_non_zero(access: Access) -> None:
    vault = (
        "SELECT sensor_id, avg_value FROM gold.sensor_averages WHERE ingestion_id = 'secret-lab'"
    )
    # A user's clearance is internal: the confidential row is refused, with the reason.
    for args in ((vault,), ("lab_vault", "--computation"), (vault, "--json")):
        denied = workbench_sql(access, access.user, *args)
        assert denied.returncode == 1, (args, denied.stdout, denied.stderr)
        assert "workbench: sensitivity_denied: " in denied.stderr, denied.stderr
        assert "'secret-lab' is 'confidential'" in denied.stderr
        assert "may see up to 'internal'" in denied.stderr and "'admin'" in denied.stderr
        assert denied.stdout == "" and str(SECRET_VALUE) not in denied.stderr
    # A viewer may not run SQL at all; told which role would, and how to get it.
    viewer = workbench_sql(access, access.viewer, vault)
    assert viewer.returncode == 1 and viewer.stdout == ""
    assert "workbench: forbidden: " in viewer.stderr and "needs the role 'user'" in viewer.stderr
    assert "workbench users role vera --role user" in viewer.stderr

    # Refused by the workbench's rules, and by Spark's parser (with where): each says which.
    hostile = workbench_sql(access, access.user, "SELECT reflect('java.lang.System', 'exit', 0)")
    assert hostile.returncode == 1 and hostile.stdout == ""
    assert "workbench: query_refused: " in hostile.stderr and "reflect()" in hostile.stderr
    two = workbench_sql(access, access.user, "SELECT 1; DROP TABLE silver.readings")
    assert two.returncode == 1 and two.stdout == ""
    assert "workbench: computation_error: " in two.stderr and "(line 1, column 11)" in two.stderr

    allowed = workbench_sql(access, access.admin, vault, "--json")  # the control
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout.splitlines()[-1]) == [
        {"sensor_id": "vault-1", "avg_value": SECRET_VALUE}
    ]
    assert "sensitivity confidential" in allowed.stderr


def test_alerts_through_the_cli_and_the_kernel_handle_follow_clearance(access: Access) -> None:
    added = workbench_cli(access, access.user, "alerts", "add-rule", "lab hot", "temperature",
                          "gt", "30")  # fmt: skip
    assert added.returncode == 0, added.stderr
    rule = json.loads(added.stdout)["id"]
    # What the gold stream records for a hot window (tested on Spark in test_processor.py).
    catalog = Catalog(access.stack.settings.catalog.url)
    catalog.apply_alert_observations(
        AlertObservation(rule, device, "lab-1", access.stack.seeded_at, True, 31.5, "public")
        for device in ("demo-sensors", "secret-lab")
    )
    catalog.close()
    try:
        listed = workbench_cli(access, access.viewer, "alerts", "list", "--status", "firing")
        assert listed.returncode == 0, listed.stderr
        (alert,) = json.loads(listed.stdout)
        assert (alert["ingestion_id"], alert["rule"]) == ("demo-sensors", "lab hot")
        assert "1 more alert(s) above your clearance (public)" in listed.stderr
        assert "secret-lab" not in listed.stdout + listed.stderr

        frame = Workbench(access.settings(access.viewer)).alerts()
        assert list(frame["ingestion_id"]) == ["demo-sensors"] and frame.attrs["hidden"] == 1

        refused = workbench_cli(access, access.viewer, "alerts", "ack", str(alert["id"]))
        assert refused.returncode == 1 and "workbench: forbidden: " in refused.stderr
        acked = workbench_cli(access, access.user, "alerts", "ack", str(alert["id"]))
        assert acked.returncode == 0, acked.stderr
        assert json.loads(acked.stdout)["acknowledged_by"] == "ulla"
    finally:
        gone = workbench_cli(access, access.admin, "alerts", "delete-rule", str(rule))
        assert gone.returncode == 0, gone.stderr
