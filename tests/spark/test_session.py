"""The jar cache and the session configuration (no JVM needed)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tests.fixtures.services import make_settings
from workbench.core.errors import ConfigError
from workbench.enrichment.bronze import BRONZE_ARROW_SCHEMA, BRONZE_SCHEMA
from workbench.spark.jars import jar_paths
from workbench.spark.session import CONNECT_PLUGIN, session_conf


def test_missing_jar_cache_says_run_make_setup(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, spark={"jar_cache": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="make setup"):
        jar_paths(settings)


def test_jar_cache_without_delta_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "delta-storage-4.0.1.jar").write_bytes(b"")
    settings = make_settings(tmp_path, spark={"jar_cache": str(tmp_path / "jars")})
    with pytest.raises(ConfigError, match=r"lacks delta-spark_2\.13"):
        jar_paths(settings)


def test_session_conf_uses_the_cache_and_never_packages(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, spark={"extra_conf": {"spark.sql.shuffle.partitions": "3"}})
    conf = session_conf(settings, connect=True)
    jars = conf["spark.jars"].split(",")
    assert any(Path(j).name.startswith("delta-spark_2.13-") for j in jars)
    assert all(Path(j).is_file() for j in jars)
    assert "spark.jars.packages" not in conf
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.shuffle.partitions"] == "3"  # extra_conf wins
    assert conf["spark.plugins"] == CONNECT_PLUGIN
    assert conf["spark.connect.grpc.binding.port"] == str(settings.engine.connect_port)
    assert conf["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert "spark.plugins" not in session_conf(settings)


def test_no_cached_jar_duplicates_a_pyspark_jar() -> None:
    import pyspark

    bundled = {
        p.name.rsplit("-", 1)[0] for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")
    }
    cached = [Path(j).name for j in jar_paths(make_settings(Path("/tmp")))]
    assert not [j for j in cached if j.rsplit("-", 1)[0] in bundled]


def test_spark_and_arrow_bronze_schemas_agree() -> None:
    spark_types = {"string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC")}
    assert BRONZE_ARROW_SCHEMA.names == BRONZE_SCHEMA.names
    for field in BRONZE_SCHEMA.fields:
        assert (
            BRONZE_ARROW_SCHEMA.field(field.name).type == spark_types[field.dataType.simpleString()]
        )
