"""Delta tables the engine owns: created empty with their schema if absent, checked if present.

Tables may also be created by another writer (tests and fixtures use the ``deltalake`` package),
so an existing table is accepted when it has every expected column with the expected type.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import SparkSession
from pyspark.sql.types import DataType, StructType

from workbench.core.errors import EngineError

log = logging.getLogger(__name__)


def ensure_delta_table(
    spark: SparkSession,
    path: str,
    schema: StructType,
    *,
    partition_by: Sequence[str] = (),
) -> None:
    """Create an empty Delta table at ``path`` unless one exists; check its columns either way.

    Args:
        spark: a session built by :func:`workbench.spark.session.build_session`.
        path: the table location.
        schema: the columns the table must have.
        partition_by: partition columns for a new table.

    Raises:
        EngineError: if the table cannot be created or its columns differ from ``schema``.
    """
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        try:
            (
                DeltaTable.createIfNotExists(spark)
                .location(path)
                .addColumns(schema)
                .partitionedBy(*partition_by)
                .execute()
            )
            log.info("created delta table path=%s", path)
        except Exception as err:
            # Another process may have committed version 0 between our check and our create;
            # that is fine if it is now a table (its columns are checked below).
            if not DeltaTable.isDeltaTable(spark, path):
                raise EngineError(
                    f"cannot create the Delta table at {path}: {err}", table=path
                ) from err
    check_columns(spark.read.format("delta").load(path).schema, schema, path)


def check_columns(found: StructType, expected: StructType, path: str) -> None:
    """Raise if ``found`` lacks a column of ``expected`` or has it with another type.

    Nullability and field metadata are ignored: other writers set them differently.
    """
    have = {f.name: f.dataType for f in found.fields}
    problems = []
    for field in expected.fields:
        actual = have.get(field.name)
        if actual is None:
            problems.append(f"missing {field.name} ({field.dataType.simpleString()})")
        elif not _same_type(actual, field.dataType):
            problems.append(
                f"{field.name} is {actual.simpleString()}, expected {field.dataType.simpleString()}"
            )
    if problems:
        raise EngineError(
            f"the Delta table at {path} does not have the expected columns: "
            f"{'; '.join(problems)}. Recreate it or migrate it to the documented schema.",
            table=path,
            problems=problems,
        )
    extra = sorted(set(have) - set(expected.names))
    if extra:
        log.info("delta table has extra columns path=%s extra=%s", path, extra)


def _same_type(a: DataType, b: DataType) -> bool:
    # simpleString drops nullability (containsNull / valueContainsNull) and metadata.
    return a.simpleString() == b.simpleString()
