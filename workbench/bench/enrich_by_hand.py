"""The enrich benchmark's peer: its normalization and value rules written by hand in PySpark.

``workbench bench enrich`` times the workbench's enrichment, whose rules live in the catalog and
are compiled into the batch's plan at run time. :func:`enrich_by_hand` is the job a data
engineer would write instead for the benchmark's five datasets, with the very same rules
hard-coded: the benchmark runs both on the same bronze files in the same run, so its ratio says
what keeping rules in a catalog costs over writing them (the target: nothing).

It is meant as a competent peer, neither a strawman nor a copy of the workbench: plain
DataFrame code, no catalog, none of the workbench's rule compiler or JVM functions. One batch
over every bronze file:

1. read the files with the bronze read schema and drop the rows that repeat a ``message_id``
   within the batch (``dropDuplicates``);
2. parse each payload once with ``from_json`` into ``map<string,string>``: that map is silver's
   ``raw`` column, and the raw spellings are looked up in it by name (exact case, so
   ``temperature`` and ``Temperature`` are two keys, which two fields of a struct schema
   differing only by case could not be); the nested ``location`` object is parsed with
   ``from_json`` and a struct schema of its three members;
3. the canonical names, one ``coalesce`` over the raw spellings each, following the seeded
   default rules (sensor id, temperature, humidity, timestamp) and the benchmark's ten
   normalization rules (four of them for one dataset only); the keys no rule maps keep their
   name, a nested one its dot path (``location.lat``);
4. the five value rules as Column expressions, each for its dataset only: two filters and a
   range check drop rows, a convert adds ``speed_mps`` (km/h ÷ 3.6), a range check flags rows
   (``validate:pm25-not-negative``);
5. silver's columns (``fields`` and ``numeric`` as maps per dataset, event time, sensor id,
   sensitivity, flags, date) in the silver schema, and one append partitioned by date and
   dataset to a fresh Delta table with silver's table properties.

The filter that removes dropped rows sits above a projection of ``spark_partition_id()`` (always
≥ 0): Spark never moves a filter through a non-deterministic projection, and without it would
push the rules' condition below the parsing and parse every payload again inside the ``Filter``
(``explain()`` shows it). Parsing before the dedupe instead, so its shuffle stops the filter,
moves the parsed maps through the shuffle and was slower.

Being written for this data, it is narrower than the workbench where the data never goes: rows
of another dataset get null ``fields`` and ``numeric``; a key missing from a payload would be a
null entry of ``fields`` (the workbench leaves it out); a speed the convert cannot divide would
be a null ``speed_mps`` (the workbench keeps the text and flags the row). The benchmark's
payloads always carry every key of their kind, as numbers, so its silver rows are the
workbench's: same rows, schema and values, which the Spark tests check row by row.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from workbench.bench.enrich_data import KINDS
from workbench.enrichment.bronze_schema import BRONZE_READ_SCHEMA
from workbench.enrichment.normalization import SILVER_PARTITIONS, SILVER_PROPERTIES, SILVER_SCHEMA

_ID = {kind.name: kind.ingestion_id for kind in KINDS}
LOCATION = "name string, lat string, lon string"
#: Top-level keys of the payloads that no rule maps.
UNMAPPED = ("status", "road_segment", "congestion", "voltage_v", "current_a", "energy_kwh_today")


def _dataset(name: str) -> Column:
    return F.col("ingestion_id") == F.lit(_ID[name])


def _first(*keys: str) -> Column:
    """The value of the first of ``keys`` present in the payload (``raw``)."""
    raw = F.col("raw")
    return F.coalesce(*(raw[key] for key in keys))


def _number(text: Column) -> Column:
    return text.try_cast("double")


def _fails(value: Column, passes: Column) -> Column:
    """A present value that does not pass (a value that is not a number does not pass)."""
    return value.isNotNull() & ~F.coalesce(passes, F.lit(False))


def canonical(bronze: DataFrame) -> DataFrame:
    """Bronze rows → ``raw``, and a column for each key of ``fields`` (canonical or not)."""
    parsed = bronze.withColumn("raw", F.from_json("payload", "map<string,string>"))
    location = F.from_json(F.col("raw")["location"], LOCATION)
    return parsed.withColumns(
        {
            # The seeded default rules, for the spellings the fleet uses.
            "sensorId": _first("sensor_id", "sensorId", "deviceId"),
            "timestamp": _first("timestamp", "ts"),
            "temperature": _first("temperature", "Temp", "Temperature"),
            "humidity": _first("humidity", "hum"),
            # The benchmark's rules; co, pm2_5, fillLevel and powerKw for one dataset each.
            "co_ppm": F.coalesce(
                F.when(_dataset("air-quality"), F.col("raw")["co"]), _first("carbon_monoxide_ppm")
            ),
            "no2_ppm": _first("nitrogen_dioxide_ppm"),
            "pm25": F.coalesce(
                F.when(_dataset("air-quality"), F.col("raw")["pm2_5"]),
                _first("particulate_matter_2_5_ug_m3"),
            ),
            "fill_level": F.coalesce(
                F.when(_dataset("smart-bin"), F.col("raw")["fillLevel"]),
                _first("fill_level_percent"),
            ),
            "vehicles": _first("vehicle_count"),
            "speed_kph": _first("average_speed_kph"),
            "power_kw": F.coalesce(
                F.when(_dataset("energy"), F.col("raw")["powerKw"]), _first("power_kw")
            ),
            # Keys no rule maps keep their name; the location object's members their path.
            **{key: F.col("raw")[key] for key in UNMAPPED},
            "location.name": location["name"],
            "location.lat": location["lat"],
            "location.lon": location["lon"],
        }
    )


def value_rules(df: DataFrame) -> DataFrame:
    """The five value rules: ``_drop`` (two filters, a range check), ``speed_mps``, ``flags``."""
    vehicles, power = F.col("vehicles"), F.col("power_kw")
    temperature, pm25 = F.col("temperature"), F.col("pm25")
    drop = (
        (_dataset("traffic") & _fails(vehicles, _number(vehicles) >= 0))
        | (_dataset("energy") & _fails(power, _number(power) > 0))
        | (_dataset("temperature") & _fails(temperature, _number(temperature).between(-40, 60)))
    )
    speed_mps = F.when(
        _dataset("traffic"), F.try_divide(_number(F.col("speed_kph")), F.lit(3.6)).cast("string")
    )
    implausible_pm25 = _dataset("air-quality") & _fails(pm25, _number(pm25).between(0, 1000))
    flags = F.when(implausible_pm25, F.array(F.lit("validate:pm25-not-negative")))
    return df.withColumns(
        {
            "_drop": drop,
            "speed_mps": speed_mps,
            "flags": F.coalesce(flags, F.array().cast("array<string>")),
        }
    )


#: Per dataset, the keys of ``fields`` after ``sensorId`` and ``timestamp``: numbers (also in
#: ``numeric``), then text.
NUMBERS: dict[str, tuple[str, ...]] = {
    "temperature": ("temperature", "humidity"),
    "air-quality": ("co_ppm", "no2_ppm", "pm25", "location.lat", "location.lon"),
    "smart-bin": ("fill_level", "location.lat", "location.lon"),
    "traffic": ("vehicles", "speed_kph", "speed_mps"),
    "energy": ("power_kw", "voltage_v", "current_a", "energy_kwh_today"),
}
TEXTS: dict[str, tuple[str, ...]] = {
    "air-quality": ("location.name",),
    "smart-bin": ("status", "location.name"),
    "traffic": ("road_segment", "congestion"),
}


def _per_dataset(entries: dict[str, list[tuple[str, Column]]]) -> Column:
    out: Column | None = None
    for name, pairs in entries.items():
        value = F.create_map(*(x for key, column in pairs for x in (F.lit(key), column)))
        out = F.when(_dataset(name), value) if out is None else out.when(_dataset(name), value)
    assert out is not None
    return out


def silver_rows(df: DataFrame, *, sensitivity: str) -> DataFrame:
    """The kept rows in the silver schema."""
    fields: dict[str, list[tuple[str, Column]]] = {}
    numeric: dict[str, list[tuple[str, Column]]] = {}
    for name, numbers in NUMBERS.items():
        keys = ("sensorId", "timestamp", *numbers, *TEXTS.get(name, ()))
        fields[name] = [(k, F.col(f"`{k}`")) for k in keys]
        numeric[name] = [(k, _number(F.col(f"`{k}`"))) for k in numbers]
    when = F.col("timestamp")
    parsed_time = F.when(
        _number(when).isNotNull(), F.timestamp_millis(_number(when).cast("long"))
    ).otherwise(when.try_cast("timestamp"))
    event_time = F.coalesce(F.col("event_time"), parsed_time)
    # See the module docstring: the partition id keeps the filter above the parsing.
    fenced = df.withColumn("_partition", F.spark_partition_id())
    kept = fenced.where(~F.col("_drop") & (F.col("_partition") >= 0))
    out = kept.select(
        "message_id",
        "ingestion_id",
        "source_type",
        "topic",
        "received_at",
        event_time.alias("event_time"),
        "event_time_raw",
        F.col("sensorId").alias("sensor_id"),
        "raw",
        _per_dataset(fields).alias("fields"),
        _per_dataset(numeric).alias("numeric"),
        "payload_kind",
        "error",
        "flags",
        F.lit(sensitivity).alias("sensitivity"),
        F.current_timestamp().alias("enriched_at"),
        F.to_date(F.coalesce(event_time, F.col("received_at"))).alias("date"),
    )
    return out.select(*(F.col(c.name).cast(c.dataType) for c in SILVER_SCHEMA.fields))


def enrich_by_hand(
    spark: SparkSession, bronze: str, silver_path: str, *, sensitivity: str = "internal"
) -> None:
    """Bronze files under ``bronze`` → the benchmark's rules → a fresh silver table.

    Args:
        spark: a Delta-enabled session.
        bronze: the bronze directory (``ingestion_id=/date=/hour=`` partitions).
        silver_path: where the silver table is created by this one append.
        sensitivity: the label of every row (the benchmark registers its five datasets with
            the default device sensitivity).
    """
    rows = spark.read.schema(BRONZE_READ_SCHEMA).parquet(bronze)
    deduped = rows.drop("meta", "date", "hour").dropDuplicates(["message_id"])
    (
        silver_rows(value_rules(canonical(deduped)), sensitivity=sensitivity)
        .write.format("delta")
        .mode("append")
        .partitionBy(*SILVER_PARTITIONS)
        .options(**SILVER_PROPERTIES)
        .save(silver_path)
    )
