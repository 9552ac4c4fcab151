"""The jar cache and the session configuration (no JVM needed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from tests.fixtures.services import make_settings
from workbench.core.errors import ConfigError
from workbench.enrichment.bronze_schema import BRONZE_ARROW_SCHEMA, BRONZE_SCHEMA
from workbench.spark.jars import S3A_JARS, jar_paths
from workbench.spark.session import CONNECT_PLUGIN, s3a_conf, session_conf

S3 = {"endpoint": "127.0.0.1:9123", "access_key": "key-id", "secret_key": "key-secret"}


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


def test_jar_cache_without_the_project_functions_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jars").mkdir()
    for name in ("delta-spark_2.13-4.0.1.jar", "delta-storage-4.0.1.jar"):
        (tmp_path / "jars" / name).write_bytes(b"")
    settings = make_settings(tmp_path, spark={"jar_cache": str(tmp_path / "jars")})
    with pytest.raises(ConfigError, match=r"lacks workbench-functions.*kernels/jvm/src"):
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


def test_no_cached_jar_duplicates_a_pyspark_class() -> None:
    import pyspark

    def classes(jar: Path) -> set[str]:
        with zipfile.ZipFile(jar) as z:
            return {
                n for n in z.namelist() if n.endswith(".class") and not n.startswith("META-INF/")
            } - {"module-info.class"}

    bundled: set[str] = set()
    for jar in (Path(pyspark.__file__).parent / "jars").glob("*.jar"):
        bundled |= classes(jar)
    cached = [Path(j) for j in jar_paths(make_settings(Path("/tmp")))]
    assert [j.name for j in cached if classes(j) & bundled] == []
    # S3A is in the cache (make setup), so an s3a:// lake needs no download either.
    names = [j.name for j in cached]
    assert all(any(n.startswith(prefix) for n in names) for prefix in S3A_JARS)
    assert not any(n.startswith("bundle-") for n in names)  # the 560 MB AWS SDK bundle


def test_s3a_lake_maps_the_s3_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        lake={"root": "s3a://lake-bucket/prod/lake"},
        s3={**S3, "secure": True, "region": "eu-west-3", "timeout_seconds": 30},
        spark={"extra_conf": {"spark.hadoop.fs.s3a.retry.limit": "9"}},
    )
    conf = session_conf(settings)
    s3a = {k.removeprefix("spark.hadoop.fs.s3a."): v for k, v in conf.items() if "fs.s3a." in k}

    assert s3a == {
        "endpoint": "https://127.0.0.1:9123",
        "endpoint.region": "eu-west-3",
        "path.style.access": "true",
        "connection.ssl.enabled": "true",
        "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "access.key": "key-id",
        "secret.key": "key-secret",
        "connection.establish.timeout": "30000ms",
        "connection.timeout": "30000ms",
        "attempts.maximum": "1",
        "retry.limit": "9",  # extra_conf still has the last word
        "retry.interval": "500ms",
    }
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3SingleDriverLogStore"
    assert "spark.hadoop.fs.s3.impl" not in conf  # s3a:// needs no mapping: Hadoop knows it


def test_s3a_timeouts_plain_http_and_the_s3_scheme(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, lake={"root": "s3://lake-bucket"}, s3={**S3, "timeout_seconds": 2}
    )
    conf = s3a_conf(settings)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9123"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    # S3A would raise anything below 15 s to 15 s itself, with a warning at every start.
    assert conf["spark.hadoop.fs.s3a.connection.establish.timeout"] == "15000ms"
    assert conf["spark.hadoop.fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    assert conf["spark.delta.logStore.s3.impl"] == "io.delta.storage.S3SingleDriverLogStore"


def test_local_lake_gets_no_s3a_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, s3=S3)
    assert s3a_conf(settings) == {}
    assert not [k for k in session_conf(settings) if "s3" in k.lower()]


def test_s3a_lake_without_credentials_says_which_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, lake={"root": "s3a://lake-bucket/lake"})
    with pytest.raises(ConfigError, match="WORKBENCH__S3__ACCESS_KEY and WORKBENCH__S3__SECRET"):
        session_conf(settings)
    nobucket = make_settings(tmp_path, lake={"root": "s3a:///lake"}, s3=S3)
    with pytest.raises(ConfigError, match="names no bucket"):
        session_conf(nobucket)


def test_s3a_lake_needs_the_s3a_jars(tmp_path: Path) -> None:
    (tmp_path / "jars").mkdir()
    for name in (
        "delta-spark_2.13-4.0.1.jar",
        "delta-storage-4.0.1.jar",
        "workbench-functions.jar",
    ):
        (tmp_path / "jars" / name).write_bytes(b"")
    jars = {"jar_cache": str(tmp_path / "jars")}
    assert len(jar_paths(make_settings(tmp_path, spark=jars))) == 3  # a local lake is fine
    s3a = make_settings(tmp_path, spark=jars, lake={"root": "s3a://b/lake"}, s3=S3)
    with pytest.raises(ConfigError, match=r"lacks hadoop-aws, .*make setup"):
        jar_paths(s3a)


def test_spark_and_arrow_bronze_schemas_agree() -> None:
    spark_types = {"string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC")}
    assert BRONZE_ARROW_SCHEMA.names == BRONZE_SCHEMA.names
    for field in BRONZE_SCHEMA.fields:
        assert (
            BRONZE_ARROW_SCHEMA.field(field.name).type == spark_types[field.dataType.simpleString()]
        )
