"""``normalize`` and ``rule_usage`` on tiny frames: the normalization rules' semantics."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from workbench.catalog.records import NormalizationRule as Rule
from workbench.enrichment.bronze_schema import BRONZE_SCHEMA
from workbench.enrichment.normalization import SILVER_SCHEMA, normalize, rule_usage

pytestmark = pytest.mark.spark

RECEIVED = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _bronze(spark: Any, *rows: tuple[str, str, Any]) -> Any:
    """Rows of ``(message_id, ingestion_id, payload)``; dict payloads are JSON objects."""
    data = []
    for message_id, ingestion_id, payload in rows:
        kind = "non_json"
        if isinstance(payload, dict):
            kind = "object"
        elif isinstance(payload, int | float):
            kind = "scalar"
        text = json.dumps(payload) if not isinstance(payload, str) else payload
        data.append(
            (message_id, "mqtt", "t", RECEIVED, None, None, text, kind, None, "{}", ingestion_id)
        )
    schema = f"{BRONZE_SCHEMA.simpleString()[len('struct<') : -1]},ingestion_id:string"
    return spark.createDataFrame(data, schema)


def _by_id(df: Any) -> dict[str, Any]:
    return {r.message_id: r for r in df.collect()}


def test_output_has_the_silver_schema(spark: Any) -> None:
    out = normalize(_bronze(spark, ("m", "ds", {"a": 1})), [])
    assert out.schema.simpleString() == SILVER_SCHEMA.simpleString()


def test_raw_keys_match_case_insensitively(spark: Any) -> None:
    rules = [Rule(1, "Sensor_ID", "sensorId"), Rule(2, "temp", "temperature")]
    out = _by_id(normalize(_bronze(spark, ("m", "ds", {"SENSOR_id": "s1", "TEMP": 20.5})), rules))
    assert out["m"].fields == {"sensorId": "s1", "temperature": "20.5"}
    assert out["m"].sensor_id == "s1"
    assert out["m"].raw == {"SENSOR_id": "s1", "TEMP": "20.5"}


@pytest.mark.parametrize("others", [0, 3, 12])
def test_of_keys_equal_but_for_case_the_last_counts_and_order_is_kept(
    spark: Any, others: int
) -> None:
    """Payload order decides, however many keys (a Scala map of 5+ entries has hash order)."""
    payload = {"Temp": 1, **{f"x{i}": i for i in range(others)}, "temp": 2}
    from pyspark.sql import functions as F

    silver = normalize(_bronze(spark, ("m", "ds", payload)), [Rule(1, "temp", "temperature")])
    # Map keys as arrays: a map collected to Python passes through a Java hash map.
    row = silver.select("fields", F.map_keys("fields"), F.map_keys("numeric")).first()
    assert row[0]["temperature"] == "2"
    assert row[1] == ["temperature", *(f"x{i}" for i in range(others))]
    assert row[2] == row[1]


def test_per_source_rules_win_over_global_ones(spark: Any) -> None:
    rules = [
        Rule(1, "temp", "temperature"),  # global
        Rule(2, "temp", "temp_f", ingestion_id="ds_f"),  # ds_f means something else by it
    ]
    frame = _bronze(spark, ("a", "ds_c", {"temp": 20}), ("b", "ds_f", {"temp": 68}))
    out = _by_id(normalize(frame, rules))
    assert out["a"].fields == {"temperature": "20"}
    assert out["b"].fields == {"temp_f": "68"}
    assert rule_usage(frame, rules) == {1: 1, 2: 1}


def test_several_raw_keys_coalesce_in_rule_order(spark: Any) -> None:
    rules = [
        Rule(5, "t_global_first", "temperature", priority=1),
        Rule(6, "t_global_second", "temperature", priority=2),
        Rule(7, "t_own", "temperature", ingestion_id="ds", priority=50),
    ]
    frame = _bronze(
        spark,
        ("own", "ds", {"t_own": 1, "t_global_first": 2, "t_global_second": 3}),
        ("global_first", "ds", {"t_global_first": 2, "t_global_second": 3}),
        ("global_second", "ds", {"t_global_second": 3, "t_own": None}),
        ("other_ds", "other", {"t_own": 1, "t_global_second": 3}),
    )
    silver = normalize(frame, rules)
    out = _by_id(silver)
    assert out["own"].fields == {"temperature": "1"}
    assert out["global_first"].fields == {"temperature": "2"}
    assert out["global_second"].fields == {"temperature": "3"}
    # t_own is a rule of "ds" only: elsewhere it is an unmapped key and keeps its name.
    assert out["other_ds"].fields == {"temperature": "3", "t_own": "1"}
    assert rule_usage(frame, rules) == {7: 1, 5: 1, 6: 2}


def test_priority_orders_rules_within_a_scope(spark: Any) -> None:
    rules = [Rule(1, "a", "x", priority=20), Rule(2, "b", "x", priority=10)]
    out = _by_id(normalize(_bronze(spark, ("m", "ds", {"a": "from_a", "b": "from_b"})), rules))
    assert out["m"].fields == {"x": "from_b"}


def test_unmapped_keys_keep_their_names_and_numbers_are_parsed(spark: Any) -> None:
    rules = [Rule(1, "sensor", "sensorId"), Rule(2, "ts", "timestamp")]
    payload = {
        "sensor": "s1",
        "ts": "2026-11-26T10:00:30Z",
        "Pressure": "1013.2",
        "status": "ok",
        "count": 3,
        "nested": {"k": 1},
        "flag": True,
    }
    out = _by_id(normalize(_bronze(spark, ("m", "ds", payload)), rules))["m"]
    assert out.fields == {
        "sensorId": "s1",
        "timestamp": "2026-11-26T10:00:30Z",
        "Pressure": "1013.2",
        "status": "ok",
        "count": "3",
        "nested.k": "1",
        "flag": "true",
    }
    assert out.numeric == {"Pressure": 1013.2, "count": 3.0, "nested.k": 1.0}
    assert out.event_time == datetime(2026, 11, 26, 10, 0, 30)  # from the canonical timestamp
    assert str(out.date) == "2026-11-26"


def test_rules_take_nested_fields_by_path_or_whole_objects(spark: Any) -> None:
    """Raw keys are the catalog's field paths: ``loc.lat``, matched case-insensitively; a
    rule on an object takes it whole, and nothing inside it passes through on its own."""
    rules = [
        Rule(1, "device.ID", "sensorId"),
        Rule(2, "data.climate.temp", "temperature"),
        Rule(3, "meta", "metadata"),
        Rule(4, "LOC", "location", ingestion_id="whole"),
    ]
    payload = {
        "device": {"id": "s9", "fw": "1.2"},
        "data": {"Climate": {"TEMP": 21.5, "hum": "40"}, "readings": [1, 2]},
        "meta": {"a": {"b": 1}},
        "loc": {"lat": 52.1, "lon": 4.3},
        "empty": {},
    }
    frame = _bronze(spark, ("paths", "ds", payload), ("whole", "whole", payload))
    out = _by_id(normalize(frame, rules))
    assert out["paths"].fields == {
        "sensorId": "s9",
        "temperature": "21.5",
        "metadata": '{"a":{"b":1}}',
        "device.fw": "1.2",
        "data.Climate.hum": "40",
        "data.readings": "[1,2]",
        "loc.lat": "52.1",
        "loc.lon": "4.3",
        "empty": "{}",
    }
    assert out["paths"].sensor_id == "s9"
    assert out["paths"].numeric == {
        "temperature": 21.5,
        "device.fw": 1.2,
        "data.Climate.hum": 40.0,
        "loc.lat": 52.1,
        "loc.lon": 4.3,
    }
    assert out["paths"].raw["loc"] == '{"lat":52.1,"lon":4.3}'  # raw: top-level keys
    assert out["whole"].fields["location"] == '{"lat":52.1,"lon":4.3}'
    assert not any(k.startswith("loc.") for k in out["whole"].fields)
    assert rule_usage(frame, rules) == {1: 2, 2: 2, 3: 2, 4: 1}


def test_nested_paths_stop_at_the_catalog_s_depth(spark: Any) -> None:
    from workbench.catalog.schemas import MAX_PATH_DEPTH, flatten

    deep: dict[str, Any] = {"v": 1}
    for _ in range(MAX_PATH_DEPTH + 2):
        deep = {"k": deep}
    payload = {"top": deep, "x.y": 1, "X": {"Y": 2}}  # a dotted key and a path: the last counts
    out = _by_id(normalize(_bronze(spark, ("m", "ds", payload)), [Rule(1, "x.y", "xy")]))["m"]
    (path, value), *_ = flatten(payload).items()
    assert out.fields[path] == json.dumps(value, separators=(",", ":"))  # the same path
    assert out.fields["xy"] == "2"


def test_hostile_nesting_is_read_without_failing_the_batch(spark: Any) -> None:
    """Deep, wide and odd payloads through the stream's reader (hostile shapes): each row comes
    out, paths stop at the depth limit, and a payload past the parser's nesting limit is "not an
    object" (as ``from_json`` has it), not a failed batch."""
    from pyspark.sql import functions as F

    def deep(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {"leaf": 1}
        for level in range(depth):
            value = {f"l{level}": value}
        return value

    wide = {"w": {f"k{i}": i for i in range(20_000)}}
    odd = {"": {"": 1}, "ключ": {"значение": "ü"}, "😀": {"x": [1, {"y": 2}]}, "a.b": {"c": None}}
    too_deep = "[" * 1100 + "]" * 1100
    frame = _bronze(
        spark,
        ("deep", "ds", deep(900)),
        ("wide", "ds", wide),
        ("odd", "ds", odd),
        ("big", "ds", {"blob": {"x": "y" * 1_000_000}}),
        ("too_deep", "ds", '{"a": ' + too_deep + "}"),
    )
    frame = frame.withColumn("payload_kind", F.lit("object"))  # as ingest marks them
    out = _by_id(normalize(frame, [Rule(1, "ключ.ЗНАЧЕНИЕ", "meaning")]))
    assert set(out) == {"deep", "wide", "odd", "big", "too_deep"}
    (path,) = out["deep"].fields
    assert path.count(".") + 1 == 16 and out["deep"].fields[path].startswith('{"l883":')
    assert len(out["wide"].fields) == 20_000 and out["wide"].numeric["w.k19999"] == 19999.0
    assert out["odd"].fields == {
        ".": "1",
        "meaning": "ü",
        "😀.x": '[1,{"y":2}]',
    }  # a.b.c is null: no field
    assert len(out["big"].fields["blob.x"]) == 1_000_000
    assert out["too_deep"].raw is None and out["too_deep"].fields == {}


def test_epoch_timestamps_and_envelope_time(spark: Any) -> None:
    rules = [Rule(1, "ts", "timestamp")]
    frame = _bronze(spark, ("s", "ds", {"ts": 1764151230}), ("ms", "ds", {"ts": 1764151230500}))
    out = _by_id(normalize(frame, rules))
    assert out["s"].event_time == datetime(2025, 11, 26, 10, 0, 30)
    assert out["ms"].event_time == datetime(2025, 11, 26, 10, 0, 30, 500000)


def test_non_object_payloads_have_no_fields(spark: Any) -> None:
    frame = _bronze(spark, ("n", "ds", 21.5), ("t", "ds", "plain text"), ("a", "ds", "[1,2]"))
    out = _by_id(normalize(frame, [Rule(1, "a", "b")]))
    for row in out.values():
        assert row.raw is None
        assert row.fields == {} and row.numeric == {}
        assert row.sensor_id is None and row.event_time is None
        assert str(row.date) == "2026-11-26"  # falls back to received_at
    assert out["n"].payload_kind == "scalar"


def test_disabled_rules_are_ignored(spark: Any) -> None:
    rules = [Rule(1, "temp", "temperature", enabled=False)]
    out = _by_id(normalize(_bronze(spark, ("m", "ds", {"temp": 1})), rules))
    assert out["m"].fields == {"temp": "1"}


def test_numeric_values_read_like_spark_try_cast(spark: Any) -> None:
    """The JVM function keeps exactly the values ``try_cast(v AS DOUBLE)`` reads as finite."""
    from pyspark.sql import functions as F

    from workbench.enrichment.normalization import NUMERIC_FUNCTION, register_function

    values = [
        "1013.2", " 7 ", "-0", "1e3", "1E-2", ".5", "5.", "+3", "1d", "2f", "0x1p3", "1_000",
        "1,5", "", " ", "abc", "NaN", "nan", "Infinity", "-Infinity", "inf", "1e400", "true",
        "\t42\n", "00012", "--1", None,
    ]  # fmt: skip
    fields = {f"k{i}": v for i, v in enumerate(values)} | {"sensorId": "17", "timestamp": "9"}
    frame = spark.createDataFrame([(fields,)], "fields map<string,string>")
    register_function(spark)
    cast = F.transform_values("fields", lambda _k, v: v.try_cast("double"))
    row = frame.select(
        F.call_function(
            NUMERIC_FUNCTION,
            F.map_keys("fields"),
            F.map_values("fields"),
            F.lit("sensorId\ntimestamp"),
        ).alias("java"),
        cast.alias("spark"),
    ).first()
    expected = {
        k: v
        for k, v in row.spark.items()
        if v is not None
        and v == v
        and abs(v) != float("inf")
        and k not in {"sensorId", "timestamp"}
    }
    assert row.java == expected
    assert row.java["k0"] == 1013.2 and "k15" not in row.java  # a number kept, text left out


#: Payloads whose reading differs between JSON parsers: number spellings, NaN, duplicates,
#: surrogates, nesting, trailing text, single quotes, comments, invalid JSON.
TRICKY_PAYLOADS = (
    '{"a": 1.50, "b": 1e3, "c": 12345678901234567890, "d": [1, 2.0, {"x":  "y"}], "e": null}',
    '{"f": true, "g": "x\\u00e9", "h": -0.0, "i": 1E+2, "j": 0.1e-400, "k": NaN}',
    '{"a": 1, "a": 2, "A": 3}',
    '{"A": 1, "a": 2, "A": 3}',
    '{"a": {"b": [1,  2]}, "c": {}, "d": [], "e": {"f": NaN}}',
    '{"a": 1} trailing',
    '{"a": 1}{"b": 2}',
    "[1,2]",
    '"s"',
    "42",
    "null",
    "",
    '{"a": "\\ud800", "b": "\\ud800\\udc00x", "c": "\\u0000", "d": "\\"q\\"", "e": "é😀"}',
    '{"a": 1, "b": tru}',
    '{"a":1,"b":[1,}',
    '{"a":1,',
    "{'a': 'single'}",
    '{"a": Infinity, "b": -Infinity, "c": +1, "d": 1.0e+400, "e": [1e400]}',
    '{"a": 01}',
    '{"a": 123456789012345678901234567890.123456789, "b": -1.5E-7, "c": 1e21, "d": 3.0}',
    '{"": "empty key", "a b": 1, "T": false}',
    '\ufeff{"a": 1}',
    '{"a": 1, "b": "x" /* c */}',
    ' {"n": ' + "9" * 1200 + "}\n",
    '{"big": [' + "1.0," * 300_000 + '1], "after": {"b": 2.50}}',  # a printer past 1 MB
    '{"next": [2.50]}',
)


def test_payload_function_reads_json_like_from_json(spark: Any) -> None:
    """``raw`` is ``from_json``'s map (a key repeated exactly: once, last value), and the
    fields are what the map-based function makes of ``from_json``'s keys and values (for
    payloads without nested objects, which it does not expand)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, LongType, MapType, StringType, StructType

    from workbench.enrichment.normalization import (
        RULES_USED,
        canonical_fields,
        plan_rules,
        plan_text,
    )

    # The plan run over a map's keys and values: the same matching as the payload reader's,
    # where nested objects are not expanded.
    returns = (
        StructType()
        .add("fields", MapType(StringType(), StringType()))
        .add(RULES_USED, ArrayType(LongType()))
    )
    spark.udf.registerJavaFunction("wb_test_map_fields", "workbench.spark.CanonicalFields", returns)

    rules = [Rule(1, "A", "alpha"), Rule(2, "t", "flag"), Rule(3, "n", "big")]
    frame = _bronze(spark, *((f"m{i}", "ds", {}) for i in range(len(TRICKY_PAYLOADS))))
    texts = F.element_at(F.array(*map(F.lit, TRICKY_PAYLOADS)), F.col("_i"))
    frame = frame.withColumn("_i", F.substring("message_id", 2, 9).cast("int") + 1).withColumn(
        "payload", texts
    )
    out = canonical_fields(frame, rules)
    spark_map = F.from_json("payload", "map<string,string>")
    reference = F.map_from_arrays(F.map_keys(spark_map), F.map_values(spark_map))
    plan = F.lit(plan_text(plan_rules(rules)[0]))  # one dataset, global rules only
    from_map = F.call_function(
        "wb_test_map_fields", F.map_keys(spark_map), F.map_values(spark_map), plan
    )
    references = frame.select("message_id", reference.alias("ref"), from_map.alias("via_map"))
    rows = (
        out.join(references, "message_id")
        .select(
            "_i",
            F.map_keys("raw").alias("keys"),
            F.map_values("raw").alias("values"),
            F.map_keys("ref").alias("ref_keys"),
            F.map_values("ref").alias("ref_values"),
            F.map_keys("fields").alias("fields"),
            F.map_values("fields").alias("field_values"),
            F.map_keys("via_map.fields").alias("map_fields"),
            F.map_values("via_map.fields").alias("map_field_values"),
            RULES_USED,
            F.col(f"via_map.{RULES_USED}").alias("map_rules"),
        )
        .orderBy("_i")
        .collect()
    )
    assert len(rows) == len(TRICKY_PAYLOADS)
    nested = {5, 25}  # 1-based: payloads with a non-empty object inside
    for row in rows:
        payload = TRICKY_PAYLOADS[row._i - 1]
        assert (row["keys"], row["values"]) == (row.ref_keys, row.ref_values), payload
        if row._i in nested:
            continue
        assert (row.fields, row.field_values, row[RULES_USED]) == (
            row.map_fields,
            row.map_field_values,
            row.map_rules,
        ), payload
    assert rows[0]["values"][:2] == ["1.5", "1000.0"]  # re-printed, as from_json does
    assert rows[2]["keys"] == ["a", "A"] and rows[2]["values"] == ["2", "3"]
    assert rows[3].field_values[0] == "3" and rows[3][RULES_USED] == [1]  # the last "A"
    assert rows[7]["keys"] is None and rows[7].fields == []  # not an object
    # Nested members as paths, printed as at the top level; arrays and {} are values; the
    # rule on "A" takes the object "a" whole.
    assert dict(zip(rows[4].fields, rows[4].field_values, strict=True)) == {
        "alpha": '{"b":[1,2]}',
        "c": "{}",
        "d": "[]",
        "e.f": '"NaN"',
    }
    assert rows[24].fields[-1] == "after.b" and rows[24].field_values[-1] == "2.5"
    assert rows[4]["values"][0] == '{"b":[1,2]}'  # raw keeps the object
