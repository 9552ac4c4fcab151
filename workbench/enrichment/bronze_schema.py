"""The bronze file contract between the ingest writer and the enrichment stream.

Layout: ``bronze/ingestion_id=<id>/date=<YYYY-MM-DD>/hour=<HH>/part-<uuid>.parquet``, where
``date`` and ``hour`` are when the rows **arrived** (``received_at``), not their event time. Lakes
written before bronze was partitioned by arrival hold event-hour partitions: they read the same
(the partition values are only names), only retention then goes by event day. Each file
is written atomically (a temporary name starting with ``.``, then a rename), so Spark, which
ignores files starting with ``.`` or ``_``, never reads a partial file.

File columns (:data:`BRONZE_SCHEMA`; the writer's Arrow schema is :data:`BRONZE_ARROW_SCHEMA`):

- ``message_id`` string: unique per record; the elements of a JSON array payload get
  ``<id>:<index>``.
- ``source_type``, ``topic`` strings.
- ``received_at`` timestamp, UTC, microseconds (Parquet ``isAdjustedToUTC=true``, i.e. Arrow
  ``timestamp("us", tz="UTC")``; a naive timestamp would be read as ``TIMESTAMP_NTZ``).
- ``event_time`` timestamp, nullable: parsed from the payload, null if absent or unparsable.
- ``event_time_raw`` string, nullable: the raw time value when it could not be parsed.
- ``payload`` string: the record's JSON text verbatim, or the raw text for non-JSON payloads.
- ``payload_kind`` string: ``object``, ``scalar``, ``non_json`` or ``invalid_utf8`` (the
  constants of :mod:`workbench.connectors.envelope`).
- ``error`` string, nullable; ``meta`` string (JSON text of the connector's metadata).

``ingestion_id``, ``date`` and ``hour`` exist only in the path. The stream reader schema
(:data:`BRONZE_READ_SCHEMA`) adds all three as **strings**: ``date`` stays ``YYYY-MM-DD`` text
and ``hour`` stays the two-digit ``HH`` text, so partition values are never re-parsed and
always match the path exactly.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from workbench.ingest.bronze_writer import BRONZE_FILE_SCHEMA

PARTITION_COLUMNS: tuple[str, ...] = ("ingestion_id", "date", "hour")

#: Columns stored in every bronze Parquet file (all nullable: Spark reads files as nullable).
BRONZE_SCHEMA = StructType(
    [
        StructField("message_id", StringType()),
        StructField("source_type", StringType()),
        StructField("topic", StringType()),
        StructField("received_at", TimestampType()),
        StructField("event_time", TimestampType()),
        StructField("event_time_raw", StringType()),
        StructField("payload", StringType()),
        StructField("payload_kind", StringType()),
        StructField("error", StringType()),
        StructField("meta", StringType()),
    ]
)

#: What ``spark.readStream`` uses over ``settings.lake.bronze``: file columns + partitions.
BRONZE_READ_SCHEMA = StructType(
    [*BRONZE_SCHEMA.fields, *(StructField(name, StringType()) for name in PARTITION_COLUMNS)]
)

#: The same file columns as an Arrow schema: the ingest writer's own, so there is one contract.
BRONZE_ARROW_SCHEMA: pa.Schema = BRONZE_FILE_SCHEMA
