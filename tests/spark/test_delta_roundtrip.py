"""Delta tables written by Spark read back by ``deltalake`` (and the reverse for gold)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from tests.fixtures.stack import GOLD_AVERAGES_SCHEMA as GOLD_ARROW_SCHEMA
from workbench.core.errors import EngineError
from workbench.core.settings import Settings
from workbench.gold.averages import GOLD_AVERAGES_SCHEMA, TABLE, ensure_gold_table

pytestmark = pytest.mark.spark

WHEN = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_spark_writes_deltalake_reads(spark: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    rows = [
        ("a", 1.5, 3, WHEN, {"k": "v"}),
        ("b", None, 4, WHEN, {}),
    ]
    schema = "name string, value double, n long, at timestamp, m map<string,string>"
    spark.createDataFrame(rows, schema).write.format("delta").partitionBy("name").save(path)

    back = spark.read.format("delta").load(path).collect()
    from_spark = sorted((r.name, r.value, r.n, r.at, dict(r.m)) for r in back)
    table = DeltaTable(path).to_pyarrow_table().to_pylist()
    from_rs = sorted(
        (r["name"], r["value"], r["n"], r["at"].replace(tzinfo=None), dict(r["m"])) for r in table
    )
    assert from_rs == from_spark
    assert from_rs[0] == ("a", 1.5, 3, datetime(2026, 11, 26, 10, 0), {"k": "v"})


def test_gold_table_made_by_deltalake_is_accepted(spark: Any, lake_settings: Settings) -> None:
    row = {
        "window_start": WHEN,
        "window_end": WHEN,
        "ingestion_id": "ds",
        "sensor_id": "s",
        "field": "temperature",
        "avg_value": 1.0,
        "min_value": 1.0,
        "max_value": 1.0,
        "count": 1,
        "updated_at": WHEN,
    }
    path = lake_settings.lake.gold(TABLE)
    write_deltalake(path, pa.Table.from_pylist([row], schema=GOLD_ARROW_SCHEMA))

    ensure_gold_table(spark, lake_settings)  # no error: same columns and types

    df = spark.read.format("delta").load(path)
    assert df.schema.simpleString() == GOLD_AVERAGES_SCHEMA.simpleString()
    assert df.first()["count"] == 1


def test_gold_table_with_other_columns_is_refused(spark: Any, lake_settings: Settings) -> None:
    path = lake_settings.lake.gold(TABLE)
    write_deltalake(path, pa.table({"window_start": pa.array(["x"]), "count": pa.array([1.0])}))
    with pytest.raises(EngineError, match="window_start is string, expected timestamp"):
        ensure_gold_table(spark, lake_settings)


def test_spark_created_empty_gold_table_reads_in_deltalake(
    spark: Any, lake_settings: Settings
) -> None:
    ensure_gold_table(spark, lake_settings)
    table = DeltaTable(lake_settings.lake.gold(TABLE)).to_pyarrow_table()
    assert table.num_rows == 0
    assert table.schema.names == GOLD_AVERAGES_SCHEMA.names
    assert table.schema.field("count").type == pa.int64()
