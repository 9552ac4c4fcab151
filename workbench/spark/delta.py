"""Delta tables the engine owns: created empty with their schema if absent, checked if present.

Tables may also be created by another writer (tests and fixtures use the ``deltalake`` package),
so an existing table is accepted when it has every expected column with the expected type.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from pyspark.sql import SparkSession
from pyspark.sql.types import DataType, StructType

from workbench.core.errors import EngineError
from workbench.spark.files import LakeFiles

log = logging.getLogger(__name__)


def ensure_delta_table(
    spark: SparkSession,
    path: str,
    schema: StructType,
    *,
    partition_by: Sequence[str] = (),
    properties: Mapping[str, str] | None = None,
) -> None:
    """Create an empty Delta table at ``path`` unless one exists; check its columns either way.

    Args:
        spark: a session built by :func:`workbench.spark.session.build_session`.
        path: the table location.
        schema: the columns the table must have.
        partition_by: partition columns for a new table.
        properties: table properties, set on a new table and brought up to date on an old one.

    Raises:
        EngineError: if the table cannot be created or its columns differ from ``schema``.
    """
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        try:
            builder = (
                DeltaTable.createIfNotExists(spark)
                .location(path)
                .addColumns(schema)
                .partitionedBy(*partition_by)
            )
            for key, value in (properties or {}).items():
                builder = builder.property(key, value)
            builder.execute()
            log.info("created delta table path=%s", path)
        except Exception as err:
            # Another process may have committed version 0 between our check and our create;
            # that is fine if it is now a table (its columns are checked below).
            if not DeltaTable.isDeltaTable(spark, path):
                raise EngineError(
                    f"cannot create the Delta table at {path}: {err}", table=path
                ) from err
    table = f"delta.`{path.replace('`', '``')}`"
    if properties:
        detail = spark.sql(f"DESCRIBE DETAIL {table}").select("properties").first()
        current = dict(detail[0] or {}) if detail is not None else {}
        stale = {k: v for k, v in properties.items() if current.get(k) != v}
        if stale:
            pairs = ", ".join(f"'{k}' = '{v}'" for k, v in stale.items())
            spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({pairs})")
            log.info("delta table properties set path=%s properties=%s", path, stale)
    found = spark.read.format("delta").load(path).schema
    missing = [f for f in schema.fields if f.name not in found.names]
    if missing:
        # A table made by an earlier version of the engine: add the new (nullable) columns so
        # old rows read them as null, instead of refusing to start.
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({columns})")
        log.info("delta table columns added path=%s columns=%s", path, [f.name for f in missing])
        found = spark.read.format("delta").load(path).schema
    check_columns(found, schema, path)


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


def _log_dir(path: str) -> str:
    return f"{path.rstrip('/')}/_delta_log"


def _commit_file(path: str, version: int) -> str:
    return f"{_log_dir(path)}/{version:020d}.json"


def latest_version(spark: SparkSession, path: str) -> int:
    """The Delta table's current version (-1 if there is no table), without a Spark job.

    From the newest checkpoint (``_last_checkpoint``) up through the commit files that
    follow it: a few file probes, where asking Delta for its history runs a job.
    """
    files = LakeFiles(spark)
    checkpoint = files.read_text(f"{_log_dir(path)}/_last_checkpoint")
    version = int(json.loads(checkpoint)["version"]) if checkpoint else -1
    while files.mtime(_commit_file(path, version + 1)) is not None:
        version += 1
    return version


def committed_since(spark: SparkSession, path: str, marker: str, version: int) -> bool:
    """Whether a commit after ``version`` carries ``marker`` as its user metadata.

    Delta skips an idempotent write whose ``(txnAppId, txnVersion)`` it has seen, without
    running the job; a writer notes the version before writing and asks this afterwards to
    learn which happened (a replay's marker exists too, but in an older commit). Reads the
    new commit files' ``commitInfo`` lines (usually one small file).
    """
    return committed_files(spark, path, marker, version) is not None


def committed_files(spark: SparkSession, path: str, marker: str, version: int) -> list[str] | None:
    """The data files added by the commit after ``version`` that carries ``marker``.

    As :func:`committed_since`, but returning the commit's ``add`` paths (absolute) instead of
    True, and None when no such commit exists.
    """
    files = LakeFiles(spark)
    for newer in range(version + 1, latest_version(spark, path) + 1):
        text = files.read_text(_commit_file(path, newer)) or ""
        actions = [json.loads(line) for line in text.splitlines() if line.strip()]
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), None) or {}
        if info.get("userMetadata") == marker:
            return [_data_file(path, a["add"]["path"]) for a in actions if "add" in a]
    return None


def _data_file(table: str, relative: str) -> str:
    """An ``add`` action's path (URI-encoded, relative to the table) as a lake path."""
    if "://" in relative or relative.startswith("/"):
        return relative
    return f"{table.rstrip('/')}/{unquote(relative)}"


def idempotent_sql(
    spark: SparkSession,
    statement: str,
    *,
    app_id: str,
    version: int,
    deterministic_source: bool = False,
) -> Any:
    """Run a Delta DML statement (MERGE, UPDATE, DELETE) as transaction ``(app_id, version)``.

    The transaction id goes through Delta's session confs, so ``spark`` must be a session no
    other thread writes with at the same time: a streaming query's own (cloned) session, i.e.
    the ``sparkSession`` of its ``foreachBatch`` frames. The commit carries
    ``<app_id>:<version>`` as user metadata (see :func:`committed_since`).
    ``deterministic_source`` tells a MERGE that its source reads the same rows every time
    (e.g. a cached micro-batch), so Delta need not copy it aside first.

    Returns:
        The statement's first result row (Delta's DML metrics), or None if none.
    """
    confs = {
        "spark.databricks.delta.write.txnAppId": app_id,
        "spark.databricks.delta.write.txnVersion": str(version),
        "spark.databricks.delta.commitInfo.userMetadata": f"{app_id}:{version}",
    }
    if deterministic_source:
        confs["spark.databricks.delta.merge.materializeSource"] = "none"
    for key, value in confs.items():
        spark.conf.set(key, value)
    try:
        return spark.sql(statement).first()
    finally:
        for key in confs:
            spark.conf.unset(key)
