"""Per-batch constants that leave the generated code unchanged.

Spark's code generator writes numeric and timestamp literals into the Java source of a stage,
so a plan holding a new timestamp every micro-batch compiles a new class every batch (Janino),
and the JIT then warms that class up from scratch: at a 2 s trigger, most of the engine's CPU.
String literals reach the generated class as references instead. A batch constant is therefore
passed as text and cast per row behind a guard the optimizer cannot fold (it would otherwise
fold the cast back into a timestamp literal).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType


def batch_timestamp(value: datetime) -> Column:
    """``value`` as a timestamp column whose generated code is the same for every value."""
    text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return F.when(F.spark_partition_id() >= 0, F.lit(text)).cast(TimestampType())
