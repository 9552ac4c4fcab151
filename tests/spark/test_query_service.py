"""The query service on a real Spark with Delta: hostile SQL refused with nothing run, the
sensitivity of each query derived from its plan, clearance, audit, limits and timeouts.

The hostile list is the point: each entry is a way past a naive guard (most of them passed
the old first-word regex), and each must be refused with a clear message while the canaries
(the tables' rows, a file path, the session catalog) show that nothing ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fixtures.services import make_settings
from workbench.analytics.computation_runner import Computations, effective_label
from workbench.analytics.query_rules import QueryRefused
from workbench.analytics.query_service import QueryService, QueryTimeoutError
from workbench.analytics.sensitivity import SensitivityDenied
from workbench.catalog.records import Computation, Device, Parameter
from workbench.catalog.schemas import DatasetObservation
from workbench.catalog.store import Catalog
from workbench.catalog.users import Identity
from workbench.core.errors import ComputationError

pytestmark = pytest.mark.spark

VIEWER = Identity("vera", "viewer", 1)
USER = Identity("ulla", "user", 2)
ADMIN = Identity("ada", "admin", 3)
LABELS = {"station-a": "public", "station-b": "confidential", "station-c": "internal"}


@pytest.fixture(scope="module")
def lake(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """silver.readings and gold.sensor_averages with rows from three devices of three labels,
    registered in the shared session; a catalog that knows the devices and datasets."""
    home = tmp_path_factory.mktemp("query-service")
    settings = make_settings(home)
    catalog = Catalog(settings.catalog.url)
    for iid, label in LABELS.items():
        catalog.save_device(Device(iid, name=iid, sensitivity=label))
    now = datetime.now(UTC)
    catalog.record_observations(
        [
            DatasetObservation(iid, "mqtt", records=2, first_seen=now, last_seen=now)
            for iid in LABELS
        ]
    )
    silver = str(home / "silver")
    gold = str(home / "gold")
    spark.sql("CREATE DATABASE IF NOT EXISTS silver")
    spark.sql("CREATE DATABASE IF NOT EXISTS gold")
    spark.sql(
        "CREATE TABLE silver.readings (ingestion_id STRING, sensor_id STRING, field STRING, "
        f"value DOUBLE, event_time TIMESTAMP) USING DELTA LOCATION '{silver}'"
    )
    spark.sql(
        "CREATE TABLE gold.sensor_averages (ingestion_id STRING, sensor_id STRING, "
        f"avg_value DOUBLE, sensitivity STRING) USING DELTA LOCATION '{gold}'"
    )
    rows = ", ".join(
        f"('{iid}', 's{i}', 'temperature', {10.0 * n + i}, TIMESTAMP '2026-12-01 10:0{i}:00')"
        for n, iid in enumerate(LABELS)
        for i in range(2)
    )
    spark.sql(f"INSERT INTO silver.readings VALUES {rows}")
    spark.sql(
        "INSERT INTO gold.sensor_averages VALUES ('station-a', 's0', 1.0, 'public'), "
        "('station-b', 's0', 2.0, 'confidential')"
    )
    service = QueryService(spark, catalog, max_limit=500)
    yield SimpleNamespace(
        spark=spark, service=service, catalog=catalog, home=home, settings=settings
    )
    spark.sql("DROP TABLE IF EXISTS silver.readings")
    spark.sql("DROP TABLE IF EXISTS gold.sensor_averages")
    catalog.close()


def silver_rows(lake: SimpleNamespace) -> int:
    return int(lake.spark.table("silver.readings").count())


HOSTILE: list[tuple[str, str, str]] = [
    # (id, SQL, a fragment the refusal must say)
    ("nested-comment-hides-drop", "/* /* */ SELECT 1 */ DROP TABLE silver.readings", "DropTable"),
    (
        "nested-comment-hides-create",
        "/* /* */ SELECT 1 */ CREATE TABLE gold.pwned AS SELECT 1 AS x",
        "read-only",
    ),
    (
        "cte-insert",
        "WITH t AS (SELECT 1) INSERT INTO silver.readings "
        "SELECT 'x', 'x', 'x', 1.0, current_timestamp()",
        "InsertIntoStatement",
    ),
    ("cte-delete", "WITH t AS (SELECT 1) DELETE FROM silver.readings", "read-only"),
    (
        "cte-insert-overwrite-directory",
        "WITH t AS (SELECT 1 AS x) INSERT OVERWRITE DIRECTORY '{out}' USING parquet "
        "SELECT * FROM t",
        "InsertIntoDir",
    ),
    ("text-file", "SELECT * FROM text.`/etc/passwd`", "reading files directly"),
    ("csv-file", "SELECT * FROM csv.`/etc/hostname`", "reading files directly"),
    ("delta-path-held", "SELECT * FROM delta.`{silver}`", "reading files directly"),
    ("parquet-path", "SELECT * FROM parquet.`{silver}`", "reading files directly"),
    ("reflect-getenv", "SELECT reflect('java.lang.System', 'getenv', 'HOME')", "reflect()"),
    ("java-method-exit", "SELECT java_method('java.lang.System', 'exit', 0)", "java_method()"),
    ("try-reflect", "SELECT try_reflect('java.lang.System', 'getenv')", "try_reflect()"),
    ("reflect-in-subquery", "SELECT (SELECT reflect('java.util.UUID', 'randomUUID'))", "reflect"),
    ("range-exhaustion", "SELECT count(*) FROM range(100000000000000)", "range()"),
    ("range-join", "SELECT * FROM silver.readings, range(1000000000)", "range()"),
    ("two-statements", "SELECT 1; SELECT 2", "line 1"),
    ("statement-after-query", "SELECT 1; DROP TABLE silver.readings", "line 1"),
    ("set-conf", "SET spark.sql.ansi.enabled=false", "SetCommand"),
    ("add-jar", "ADD JAR '/tmp/evil.jar'", "read-only"),
    ("create-function", "CREATE TEMPORARY FUNCTION f AS 'java.lang.String'", "read-only"),
    ("create-view", "CREATE TEMPORARY VIEW v AS SELECT 1", "read-only"),
    ("cache-table", "CACHE TABLE silver.readings", "read-only"),
    ("show-tables", "SHOW TABLES", "read-only"),
    ("describe", "DESCRIBE TABLE silver.readings", "read-only"),
    ("explain", "EXPLAIN SELECT 1", "read-only"),
    ("hint", "SELECT /*+ REPARTITION(100000) */ * FROM silver.readings", "hints"),
    ("unknown-table", "SELECT * FROM default.secrets", "not one the workbench serves"),
    ("other-catalog", "SELECT * FROM spark_catalog.default.x", "not one the workbench serves"),
    ("udf-name", "SELECT my_udf(1)", "not an allowed function"),
    ("qualified-function", "SELECT default.f(1)", "not an allowed function"),
    ("string-fakes-end", "SELECT ';' AS x; DROP TABLE silver.readings", "line 1"),
    ("empty", "   ", "no SQL"),
    ("only-comment", "-- nothing", ""),
    ("sequence-memory", "SELECT size(sequence(1, 2000000000))", "sequence()"),
    ("array-repeat-memory", "SELECT array_repeat(1, 2000000000)", "array_repeat()"),
    ("repeat-memory", "SELECT repeat('x', 2000000000)", "repeat()"),
    (
        "explode-sequence",
        "SELECT count(*) FROM silver.readings LATERAL VIEW explode(sequence(1, 100000000)) t AS x",
        "sequence()",
    ),
]


def test_a_dash_comment_continued_by_a_backslash_runs_only_what_spark_parses(
    lake: SimpleNamespace,
) -> None:
    # Spark's lexer continues a -- comment over a backslash-newline: the DROP is comment text.
    # What is checked is what Spark parsed, and that is exactly what runs.
    result = lake.service.run("SELECT 1 AS one -- hide \\\n; DROP TABLE silver.readings", ADMIN)
    assert result.rows == [(1,)]
    assert lake.spark.catalog.tableExists("silver.readings")


@pytest.mark.parametrize(("case", "sql", "says"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_sql_is_refused_and_nothing_runs(
    lake: SimpleNamespace, case: str, sql: str, says: str
) -> None:
    out = lake.home / f"out-{case}"
    text = sql.format(out=out, silver=lake.home / "silver")
    before = silver_rows(lake)
    tables_before = {t.name for t in lake.spark.catalog.listTables("gold")}
    with pytest.raises(ComputationError) as refused:
        lake.service.run(text, ADMIN)  # even an admin: these are refused for what they are
    assert says in refused.value.message, refused.value.message
    assert silver_rows(lake) == before
    assert {t.name for t in lake.spark.catalog.listTables("gold")} == tables_before
    assert not out.exists()
    assert "evil" not in str(lake.spark.conf.get("spark.jars", ""))


def test_the_engine_process_and_its_environment_are_untouched(lake: SimpleNamespace) -> None:
    # Had java_method run, the JVM would have exited; had reflect run, HOME would be in a row.
    with pytest.raises(QueryRefused):
        lake.service.run("SELECT reflect('java.lang.System', 'getenv', 'HOME') AS h", ADMIN)
    assert lake.spark.range(1).count() == 1
    assert os.environ.get("HOME")  # the test process is fine too


def test_spark_errors_come_with_line_and_column(lake: SimpleNamespace) -> None:
    with pytest.raises(ComputationError) as bad:
        lake.service.run("SELECT value\nFROM silver.readings\nWHERE nope > 1", ADMIN)
    assert bad.value.fields["line"] == 3 and bad.value.fields["column"] == 7
    assert "nope" in bad.value.message
    with pytest.raises(ComputationError) as syntax:
        lake.service.run("SELECT 1\nFROM (", ADMIN)
    assert syntax.value.fields["line"] == 2 and "PARSE_SYNTAX_ERROR" in syntax.value.message


@pytest.mark.parametrize(
    ("sql", "label", "devices"),
    [
        ("SELECT * FROM silver.readings WHERE ingestion_id = 'station-a'", "public", {"station-a"}),
        (
            "SELECT * FROM silver.readings WHERE ingestion_id IN ('station-a', 'station-c')",
            "internal",
            {"station-a", "station-c"},
        ),
        ("SELECT count(*) FROM silver.readings", "confidential", set(LABELS)),
        ("SELECT avg(value) FROM silver.readings", "confidential", set(LABELS)),
        (
            "WITH t AS (SELECT * FROM silver.readings) SELECT * FROM t "
            "WHERE ingestion_id = 'station-a'",
            "public",
            {"station-a"},
        ),
        (
            "SELECT ingestion_id, avg(value) FROM silver.readings GROUP BY ingestion_id "
            "HAVING ingestion_id = 'station-a'",
            "public",
            {"station-a"},
        ),
        (  # a window over every device leaks into each row: not narrowed
            "SELECT * FROM (SELECT ingestion_id, value, avg(value) OVER () AS mean "
            "FROM silver.readings) WHERE ingestion_id = 'station-a'",
            "confidential",
            set(LABELS),
        ),
        (  # the subquery reads every device
            "SELECT * FROM silver.readings WHERE ingestion_id = 'station-a' "
            "AND value > (SELECT avg(value) FROM silver.readings)",
            "confidential",
            set(LABELS),
        ),
        (  # the filter on one side reaches the other through the join condition
            "SELECT a.value, b.value FROM silver.readings a JOIN silver.readings b "
            "ON a.ingestion_id = b.ingestion_id WHERE a.ingestion_id = 'station-a'",
            "public",
            {"station-a"},
        ),
        (
            "SELECT * FROM silver.readings WHERE ingestion_id = 'station-a' OR value > 0",
            "confidential",
            set(LABELS),
        ),
        ("SELECT * FROM devices", "internal", set()),
        ("SELECT 1 AS one", "public", set()),
        (
            "SELECT * FROM gold.sensor_averages WHERE ingestion_id = 'station-b'",
            "confidential",
            {"station-b"},
        ),
        (  # an id nobody has data for adds nothing
            "SELECT * FROM silver.readings WHERE ingestion_id = 'nobody'",
            "public",
            set(),
        ),
    ],
)
def test_sensitivity_is_derived_from_the_plan(
    lake: SimpleNamespace, sql: str, label: str, devices: set[str]
) -> None:
    derivation = lake.service.prepare(sql).derivation
    assert derivation.label == label
    assert set(derivation.devices) == devices


def test_parameters_narrow_like_literals_and_are_never_spliced(lake: SimpleNamespace) -> None:
    sql = "SELECT * FROM silver.readings WHERE ingestion_id = :device"
    narrowed = lake.service.run(sql, VIEWER, parameters={"device": "station-a"})
    assert narrowed.sensitivity == "public" and len(narrowed.rows) == 2
    injected = lake.service.run(sql, VIEWER, parameters={"device": "x' OR '1'='1"})
    assert injected.rows == []  # one string that matches nothing
    with pytest.raises(SensitivityDenied):
        lake.service.run(sql, VIEWER, parameters={"device": "station-b"})


def test_a_denied_read_names_the_device_label_and_clearance(lake: SimpleNamespace) -> None:
    with pytest.raises(SensitivityDenied) as denied:
        lake.service.run("SELECT * FROM silver.readings", USER)
    err = denied.value
    assert err.status == 403 and err.code == "sensitivity_denied"
    assert err.fields["device"] == "station-b" and err.fields["label"] == "confidential"
    assert err.fields["clearance"] == "internal" and err.fields["needs"] == "admin"
    assert "'station-b' is 'confidential'" in err.message
    with pytest.raises(SensitivityDenied) as viewer:
        lake.service.run("SELECT * FROM silver.readings WHERE ingestion_id = 'station-c'", VIEWER)
    assert viewer.value.fields["needs"] == "user"


def test_clearance_follows_the_role(lake: SimpleNamespace) -> None:
    sql = "SELECT * FROM silver.readings WHERE ingestion_id = 'station-c'"
    assert lake.service.run(sql, USER).sensitivity == "internal"
    assert len(lake.service.run("SELECT * FROM silver.readings", ADMIN).rows) == 6


def test_a_relabelled_device_is_honoured_by_the_next_query(lake: SimpleNamespace) -> None:
    sql = "SELECT * FROM silver.readings WHERE ingestion_id = 'station-a'"
    assert lake.service.run(sql, VIEWER).sensitivity == "public"
    lake.catalog.save_device(Device("station-a", name="a", sensitivity="confidential"))
    try:
        with pytest.raises(SensitivityDenied):
            lake.service.run(sql, VIEWER)
        rows = lake.service.run("SELECT * FROM devices WHERE ingestion_id = 'station-a'", ADMIN)
        assert rows.rows[0][2] == "confidential"  # the devices view follows too
    finally:
        lake.catalog.save_device(Device("station-a", name="station-a", sensitivity="public"))


def test_confidential_reads_are_audited_and_public_ones_are_not(lake: SimpleNamespace) -> None:
    before = len(lake.catalog.audit_entries())
    lake.service.run("SELECT * FROM silver.readings WHERE ingestion_id = 'station-a'", ADMIN)
    assert len(lake.catalog.audit_entries()) == before
    lake.service.run("SELECT * FROM silver.readings", ADMIN)
    [entry] = lake.catalog.audit_entries(limit=1)
    assert entry.user == "ada" and entry.sensitivity == "confidential"
    assert entry.tables == ["silver.readings"] and entry.rows == 6
    assert "station-b" in entry.devices


def test_the_limit_truncates_and_is_bounded(lake: SimpleNamespace) -> None:
    result = lake.service.run("SELECT * FROM silver.readings", ADMIN, limit=4)
    assert len(result.rows) == 4 and result.truncated
    whole = lake.service.run("SELECT * FROM silver.readings", ADMIN, limit=6)
    assert len(whole.rows) == 6 and not whole.truncated
    for limit in (0, 501):
        with pytest.raises(ComputationError, match="limit must be between 1 and 500"):
            lake.service.run("SELECT 1", ADMIN, limit=limit)


def test_a_query_past_its_timeout_is_cancelled(lake: SimpleNamespace) -> None:
    # A cross join big enough to run for minutes; the timeout cancels its jobs by their tag.
    names = "abcdefghijkl"  # 6 rows each: 6**12 ≈ 2e9 combinations, minutes of CPU
    tables = ", ".join(f"silver.readings {n}" for n in names)
    total = " + ".join(f"{n}.value" for n in names)
    slow = f"SELECT count(*) FROM {tables} WHERE {total} > rand()"
    started = datetime.now(UTC)
    with pytest.raises(QueryTimeoutError, match="cancelled"):
        lake.service.run(slow, ADMIN, timeout_seconds=2.0)
    assert (datetime.now(UTC) - started).total_seconds() < 30
    tracker = lake.spark.sparkContext.statusTracker()
    assert tracker.getActiveJobsIds() == []  # nothing left running
    assert lake.service.run("SELECT 1 AS one", ADMIN).rows == [(1,)]


def test_computation_labels_raise_and_only_admins_lower(lake: SimpleNamespace) -> None:
    computations = Computations(lake.service, lake.catalog)
    everything = "SELECT avg(value) AS mean FROM silver.readings"
    with pytest.raises(ComputationError, match="can only raise"):
        computations.save(Computation("mean", everything, sensitivity="public"), USER)
    saved = computations.save(Computation("mean", everything, sensitivity="public"), ADMIN)
    assert saved["declassified"] and saved["derived_sensitivity"]["label"] == "confidential"
    assert computations.run("mean", VIEWER).sensitivity == "public"  # declassified by an admin
    # A later save by a user cannot keep the admin's declassification.
    with pytest.raises(ComputationError):
        computations.save(Computation("mean", everything + " ", sensitivity="public"), USER)
    raised = computations.save(
        Computation(
            "one",
            "SELECT * FROM silver.readings WHERE ingestion_id = :d",
            parameters=(Parameter("d", "string", "station-a"),),
            sensitivity="internal",
        ),
        USER,
    )
    assert raised["owner"] == "ulla" and not raised["declassified"]
    assert computations.run("one", USER).sensitivity == "internal"  # raised above public
    with pytest.raises(SensitivityDenied):  # a parameter that reaches further is re-derived
        computations.run("one", USER, parameters={"d": "station-b"})
    assert effective_label(Computation("x", "", sensitivity="internal"), "restricted") == (
        "restricted"
    )


def test_computation_parameters_are_typed(lake: SimpleNamespace) -> None:
    computations = Computations(lake.service, lake.catalog)
    computations.save(
        Computation(
            "above",
            "SELECT count(*) AS n FROM silver.readings "
            "WHERE ingestion_id = 'station-a' AND value > :threshold",
            parameters=(Parameter("threshold", "double"),),
        ),
        USER,
    )
    assert computations.run("above", VIEWER, parameters={"threshold": "0.5"}).rows == [(1,)]
    with pytest.raises(ComputationError, match="must be a double"):
        computations.run("above", VIEWER, parameters={"threshold": "warm"})
    with pytest.raises(ComputationError, match="needs a value"):
        computations.run("above", VIEWER)
    with pytest.raises(ComputationError, match="no parameter 'nope'"):
        computations.run("above", VIEWER, parameters={"threshold": 1, "nope": 2})


def test_tables_lists_what_queries_may_read(lake: SimpleNamespace, tmp_path: Path) -> None:
    listed = {t["table"]: t for t in lake.service.tables()}
    assert {"silver.readings", "gold.sensor_averages", "devices"} <= set(listed)
    assert "ingestion_id" in {c["name"] for c in listed["silver.readings"]["columns"]}
