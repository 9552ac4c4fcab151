"""The one place Spark sessions are built (F14).

:func:`build_session` starts a driver JVM (the engine service, tests, batch jobs);
:func:`connect_session` gives thin clients (kernels, Voila apps) a Spark Connect session to the
engine without a JVM of their own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from workbench.core.settings import Settings
from workbench.spark.jars import jar_paths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"


def session_conf(settings: Settings, *, connect: bool = False) -> dict[str, str]:
    """The Spark configuration :func:`build_session` applies, as plain strings.

    Args:
        settings: the workbench settings.
        connect: also serve Spark Connect on ``settings.engine.connect_port``.

    Raises:
        ConfigError: if the jar cache is missing (see :func:`workbench.spark.jars.jar_paths`).
    """
    conf: dict[str, str] = {
        # Jars come from the local cache only. Nothing sets spark.jars.packages, so Ivy never
        # runs and a session starts without network.
        "spark.jars": ",".join(jar_paths(settings)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.ui.enabled": str(settings.spark.ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.sql.session.timeZone": "UTC",
        # Tables are registered by the engine at start over Delta paths; no Hive metastore
        # (no derby files in the working directory, no metastore to keep in sync).
        "spark.sql.catalogImplementation": "in-memory",
        # Bad data must never stop a stream: a payload with a key twice keeps the last value
        # instead of failing the whole micro-batch.
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        # Delta rebuilds table snapshots with 50 tasks by default; our Delta logs are small and
        # checkpointed, so one task per shuffle partition keeps each micro-batch fast.
        "spark.databricks.delta.snapshotPartitions": str(settings.spark.shuffle_partitions),
        "spark.log.level": "WARN",
    }
    if connect:
        conf["spark.plugins"] = CONNECT_PLUGIN
        conf["spark.connect.grpc.binding.port"] = str(settings.engine.connect_port)
        conf["spark.connect.grpc.binding.address"] = settings.engine.host
    # Last, so an operator can override anything above from workbench.toml.
    conf.update(settings.spark.extra_conf)
    return conf


def build_session(settings: Settings, *, app_name: str, connect: bool = False) -> SparkSession:
    """Build (or return the running) Spark session with Delta and the cached jars.

    Args:
        settings: the workbench settings (master, memory, jar cache, Connect port).
        app_name: the Spark application name, shown in logs and the UI.
        connect: serve Spark Connect from this driver (the engine service does).

    Returns:
        The session. Static options only take effect if this call starts the JVM.

    Raises:
        ConfigError: if the jar cache is missing.
    """
    from pyspark.sql import SparkSession

    conf = session_conf(settings, connect=connect)
    builder: Any = SparkSession.builder.master(settings.spark.master).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    log.info(
        "building spark session app=%s master=%s connect=%s jars=%d",
        app_name,
        settings.spark.master,
        connect,
        len(conf["spark.jars"].split(",")),
    )
    session: SparkSession = builder.getOrCreate()
    return session


def connect_session(settings: Settings) -> SparkSession:
    """A thin Spark Connect session to the engine service (no local JVM).

    Args:
        settings: the workbench settings (``settings.engine.connect_url``).
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    url = settings.engine.connect_url
    if SparkContext._active_spark_context is not None:
        # This process already runs a driver (tests, the engine). The generic builder refuses
        # a remote session then (and would switch the whole process into Connect mode), so
        # build the Connect session directly; use SQL text with it, not pyspark.sql.functions.
        from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

        remote = RemoteSparkSession.builder.remote(url).getOrCreate()
        return cast("SparkSession", remote)
    session: SparkSession = SparkSession.builder.remote(url).getOrCreate()
    return session
