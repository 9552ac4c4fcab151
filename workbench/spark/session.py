"""The one place Spark sessions are built.

:func:`build_session` starts a driver JVM (the engine service, tests, batch jobs);
:func:`connect_session` gives thin clients (kernels, Voila apps) a Spark Connect session to the
engine without a JVM of their own. A lake on ``s3a://bucket/prefix`` gets the S3A settings of
:func:`s3a_conf` (MinIO or any S3 endpoint, from ``settings.s3``).

Spark Connect runs SQL and JVM code for whoever reaches its port, so the engine serves it only
with Spark's pre-shared token (:data:`CONNECT_TOKEN_KEY`, from ``settings.auth.connect_token``),
on ``settings.engine.host`` (loopback by default); clients present the same token
(:func:`connect_url_with_token`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from workbench.core.errors import ConfigError
from workbench.core.settings import Settings
from workbench.lake.storage import is_object_store_root, parse_object_store_root
from workbench.spark.jars import jar_paths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
#: Spark Connect's pre-shared token (Spark 4.0's ``Connect.CONNECT_AUTHENTICATE_TOKEN``): set,
#: the server installs ``PreSharedKeyAuthenticationInterceptor`` and answers every call without
#: ``Authorization: Bearer <token>`` with UNAUTHENTICATED.
CONNECT_TOKEN_KEY = "spark.connect.authenticate.token"
#: The environment variable Spark's server reads the token from when the conf key is unset (and
#: pyspark's client too, when its URL has no ``token``).
CONNECT_TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"
#: Spark's default for ``spark.redaction.regex``: option names it matches are redacted in the
#: UI, event logs and ``SET`` output. It covers :data:`CONNECT_TOKEN_KEY` ("token").
SPARK_REDACTION_REGEX = r"(?i)secret|password|token|access[.]?key"
_REDACTION_KEY = "spark.redaction.regex"

#: Retries of one S3 request inside the AWS SDK, then attempts of one S3A operation around
#: them. Few on purpose: an operation on a store that is down fails within seconds (connection
#: refused) or about two minutes (no answer at all) instead of S3A's default many minutes; the
#: stream's batch retries and the engine's restarts take over from there.
S3A_SDK_RETRIES = 1
S3A_RETRY_LIMIT = 3
#: S3A raises a connect or read timeout below this to it (with a warning).
S3A_MIN_TIMEOUT_SECONDS = 15.0

_S3A_FILESYSTEM = "org.apache.hadoop.fs.s3a.S3AFileSystem"
#: The S3A settings that are secrets: set in the running JVM, never on its command line.
_S3A_KEYS = ("spark.hadoop.fs.s3a.access.key", "spark.hadoop.fs.s3a.secret.key")
#: Delta's log store for S3 (also its default there): atomic put-if-absent of a commit file is
#: only guaranteed within one driver, so one engine (one driver) writes a lake at a time.
_S3_LOG_STORE = "io.delta.storage.S3SingleDriverLogStore"


def s3a_conf(settings: Settings) -> dict[str, str]:
    """The S3A (and Delta log store) settings for an ``s3a://`` lake; empty for a local lake.

    Endpoint, region, TLS and credentials come from ``settings.s3``; the connect and read
    timeouts are ``s3.timeout_seconds`` (at least :data:`S3A_MIN_TIMEOUT_SECONDS`), and retries
    are bounded (:data:`S3A_SDK_RETRIES`, :data:`S3A_RETRY_LIMIT`). Only the configured key
    pair is tried: no environment, profile or instance-metadata lookups. Spark redacts the keys
    in its UI and logs; never log this mapping.

    Args:
        settings: the workbench settings (``lake.root``, ``s3``).

    Raises:
        ConfigError: if the root names no bucket or the credentials are missing.
    """
    root = settings.lake.root
    if not is_object_store_root(root):
        return {}
    bucket, _ = parse_object_store_root(root)
    s3 = settings.s3
    url = f"{'https' if s3.secure else 'http'}://{s3.endpoint}"
    if not s3.access_key or not s3.secret_key:
        raise ConfigError(
            f"no credentials for the object store at {url} (bucket {bucket!r}) of the lake "
            f"{root}; set WORKBENCH__S3__ACCESS_KEY and WORKBENCH__S3__SECRET_KEY",
            setting="s3.access_key",
        )
    timeout = f"{round(max(s3.timeout_seconds, S3A_MIN_TIMEOUT_SECONDS) * 1000)}ms"
    s3a = {
        "endpoint": url,
        "endpoint.region": s3.region,
        # MinIO serves buckets as paths (http://host:port/bucket), not as host names.
        "path.style.access": "true",
        "connection.ssl.enabled": str(s3.secure).lower(),
        "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        # Real values, in a conf only handed to the JVM (Spark redacts these names in its UI
        # and logs); never log this mapping.
        "access.key": s3.access_key.get_secret_value(),
        "secret.key": s3.secret_key.get_secret_value(),
        "connection.establish.timeout": timeout,
        "connection.timeout": timeout,
        "attempts.maximum": str(S3A_SDK_RETRIES),
        "retry.limit": str(S3A_RETRY_LIMIT),
        "retry.interval": "500ms",
    }
    conf = {f"spark.hadoop.fs.s3a.{key}": value for key, value in s3a.items()}
    conf["spark.delta.logStore.s3a.impl"] = _S3_LOG_STORE
    if root.startswith("s3://"):
        # Hadoop knows s3a:// only; an s3:// lake is read through the same S3A file system.
        conf["spark.hadoop.fs.s3.impl"] = _S3A_FILESYSTEM
        conf["spark.hadoop.fs.AbstractFileSystem.s3.impl"] = "org.apache.hadoop.fs.s3a.S3A"
        conf["spark.delta.logStore.s3.impl"] = _S3_LOG_STORE
    return conf


def _connect_token(settings: Settings, *, purpose: str) -> str:
    """``settings.auth.connect_token``'s value; ConfigError (never showing it) when unset."""
    token = settings.auth.connect_token
    value = token.get_secret_value() if token is not None else ""
    if not value.strip():
        raise ConfigError(
            f"{purpose}: set WORKBENCH__AUTH__CONNECT_TOKEN (`workbench up` generates one)",
            setting="auth.connect_token",
        )
    return value


def _redacts(regex: str, key: str) -> bool:
    try:
        return re.search(regex, key) is not None
    except re.error:  # Java-only syntax: assume the worst and add the key
        return False


def session_conf(settings: Settings, *, connect: bool = False) -> dict[str, str]:
    """The Spark configuration :func:`build_session` applies, as plain strings.

    With ``connect``, the result holds the Spark Connect token (:data:`CONNECT_TOKEN_KEY`):
    never log or show it (Spark redacts the key in its UI and logs).

    Args:
        settings: the workbench settings.
        connect: also serve Spark Connect on ``settings.engine.connect_port``, bound to
            ``settings.engine.host`` and protected by ``settings.auth.connect_token``.

    Raises:
        ConfigError: if the jar cache is missing (see :func:`workbench.spark.jars.jar_paths`),
            the lake is on ``s3a://`` without credentials (see :func:`s3a_conf`), or Connect
            is asked for without a token (or with ``spark.extra_conf`` setting the token).
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
        # CREATE DATABASE makes a directory under the warehouse (./spark-warehouse by
        # default): keep it in the workbench's home, never in whatever directory this runs in.
        "spark.sql.warehouse.dir": str(Path(settings.home) / "spark-warehouse"),
        # Bad data must never stop a stream: a payload with a key twice keeps the last value
        # instead of failing the whole micro-batch.
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        # Delta rebuilds table snapshots with 50 tasks by default; our Delta logs are small and
        # checkpointed, so one task per shuffle partition keeps each micro-batch fast.
        "spark.databricks.delta.snapshotPartitions": str(settings.spark.shuffle_partitions),
        "spark.log.level": "WARN",
        # Streaming state (the enrichment's de-duplication of redelivered ids: ~1 million keys
        # at 1,000 msg/s) in RocksDB with changelog checkpoints: a batch writes only its
        # changes, where the default in-memory store copies the whole map every batch. Existing
        # checkpoints keep the store they were started with (Spark records it in them).
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # Counting the store's rows costs a read before every write (the de-duplication's
        # state for 1M new ids: 4.5 → 3.6 s); nothing here uses the count.
        "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
        # The engine runs several queries at once (enrichment, gold, computations) and serves
        # analysts' queries: share the cores between their jobs instead of first come, first
        # served (each query's batches run in a pool named after it).
        "spark.scheduler.mode": "FAIR",
        # Generated code is cached by its source text. One enrichment and one gold batch
        # generate ~100 classes (JSON, the enrichment function, Delta's writes, log replay and
        # MERGE): with the default 100 entries the cache thrashed and every batch recompiled
        # ~60 classes, and the JIT warmed them up again (most of a live batch's CPU).
        "spark.sql.codegen.cache.maxEntries": "2000",
        # Parquet dictionary-encodes every string column until the dictionary outgrows its
        # page. Message ids are unique and payload values nearly so: hashing them into a
        # dictionary that is dropped anyway cost 30 % of silver's write (1M rows: 3.0 → 2.0 s,
        # files +22 %). Map keys stay dictionary-encoded.
        **{
            f"spark.hadoop.parquet.enable.dictionary#{column}": "false"
            for column in ("message_id", "raw.key_value.value", "fields.key_value.value")
        },
    }
    if connect:
        conf["spark.plugins"] = CONNECT_PLUGIN
        conf["spark.connect.grpc.binding.port"] = str(settings.engine.connect_port)
        conf["spark.connect.grpc.binding.address"] = settings.engine.host
        conf[CONNECT_TOKEN_KEY] = _connect_token(
            settings, purpose="the engine serves Spark Connect only with a token"
        )
        if CONNECT_TOKEN_KEY in settings.spark.extra_conf:
            # One token, the one clients take from auth.connect_token (and which is masked in
            # every listing of the settings).
            raise ConfigError(
                f"spark.extra_conf must not set {CONNECT_TOKEN_KEY}; set "
                "WORKBENCH__AUTH__CONNECT_TOKEN instead",
                setting="spark.extra_conf",
            )
    conf.update(s3a_conf(settings))
    # Last, so an operator can override anything above from workbench.toml.
    conf.update(settings.spark.extra_conf)
    redaction = conf.get(_REDACTION_KEY)
    if connect and redaction is not None and not _redacts(redaction, CONNECT_TOKEN_KEY):
        # An operator's own redaction pattern still hides the token.
        conf[_REDACTION_KEY] = f"{redaction}|spark[.]connect[.]authenticate[.]token"
    return conf


@contextmanager
def _token_in_environment(conf: dict[str, str]) -> Iterator[dict[str, str]]:
    """``conf`` without the Connect token, which is in the environment meanwhile.

    pyspark starts the driver JVM as ``spark-submit --conf key=value ...``: a token in the conf
    would sit in the JVM's command line, which every local user can read (``ps``,
    ``/proc/<pid>/cmdline``). Spark's server falls back to :data:`CONNECT_TOKEN_ENV` when the
    key is unset, and a process's environment is readable by its owner only; the variable is
    removed again once the session is built (the JVM keeps its copy).
    """
    token = conf.get(CONNECT_TOKEN_KEY)
    if token is None:
        yield conf
        return
    saved = os.environ.get(CONNECT_TOKEN_ENV)
    os.environ[CONNECT_TOKEN_ENV] = token
    try:
        yield {key: value for key, value in conf.items() if key != CONNECT_TOKEN_KEY}
    finally:
        if saved is None:
            os.environ.pop(CONNECT_TOKEN_ENV, None)
        else:
            os.environ[CONNECT_TOKEN_ENV] = saved


def build_session(settings: Settings, *, app_name: str, connect: bool = False) -> SparkSession:
    """Build (or return the running) Spark session with Delta and the cached jars.

    Args:
        settings: the workbench settings (master, memory, jar cache, Connect port).
        app_name: the Spark application name, shown in logs and the UI.
        connect: serve Spark Connect from this driver (the engine service does).

    Returns:
        The session. Static options only take effect if this call starts the JVM.

    Raises:
        ConfigError: if the jar cache is missing, an ``s3a://`` lake has no credentials, or
            ``connect`` is asked for without ``settings.auth.connect_token``.
    """
    from pyspark.sql import SparkSession

    # Python workers (the bronze source's readers) run the interpreter named here, read by the
    # JVM from its environment at launch; without it Spark runs whatever ``python3`` is first
    # on the PATH, which may lack pyarrow and the workbench. An operator's own choice wins.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with _token_in_environment(session_conf(settings, connect=connect)) as conf:
        # The object-store keys go into the running JVM's Hadoop configuration, not onto the
        # spark-submit command line every local user can read (/proc/<pid>/cmdline).
        keys = {k: conf.pop(k) for k in _S3A_KEYS if k in conf}
        builder: Any = SparkSession.builder.master(settings.spark.master).appName(app_name)
        for key, value in conf.items():
            builder = builder.config(key, value)
        # Counts and names only: the conf holds secrets (S3 keys).
        log.info(
            "building spark session app=%s master=%s connect=%s jars=%d lake=%s",
            app_name,
            settings.spark.master,
            connect,
            len(conf["spark.jars"].split(",")),
            settings.lake.root,
        )
        session: SparkSession = builder.getOrCreate()
    if keys:
        # Before any s3a:// file system exists (each is built from this configuration once);
        # the driver's executors run in this JVM, so they read the same configuration.
        hadoop = session.sparkContext._jsc.hadoopConfiguration()
        for key, value in keys.items():
            hadoop.set(key.removeprefix("spark.hadoop."), value)
    return session


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def connect_url_with_token(settings: Settings) -> str:
    """The Spark Connect URL of the engine, carrying ``settings.auth.connect_token``.

    The result is a secret: hand it to pyspark only, never log or show it (show
    ``settings.engine.connect_url``). pyspark sends a token over local gRPC credentials only
    when the host is literally ``localhost`` and demands TLS anywhere else, so an engine on a
    loopback address is reached as ``localhost`` (which must resolve to that address) and any
    other host with ``use_ssl=true`` (a TLS proxy in front of the engine).

    Raises:
        ConfigError: if the client has no connect token (the message never holds one).
    """
    engine = settings.engine
    token = urllib.parse.quote(
        _connect_token(settings, purpose="a Spark Connect client needs the engine's token"), safe=""
    )
    if _is_loopback(engine.host):
        return f"sc://localhost:{engine.connect_port}/;token={token}"
    return f"sc://{engine.host}:{engine.connect_port}/;use_ssl=true;token={token}"


def connect_session(settings: Settings) -> SparkSession:
    """A thin Spark Connect session to the engine service (no local JVM).

    Args:
        settings: the workbench settings (``settings.engine``, ``settings.auth.connect_token``;
            see :func:`connect_url_with_token`).

    Raises:
        ConfigError: if ``settings.auth.connect_token`` is unset.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    url = connect_url_with_token(settings)
    if SparkContext._active_spark_context is not None:
        # This process already runs a driver (tests, the engine). The generic builder refuses
        # a remote session then (and would switch the whole process into Connect mode), so
        # build the Connect session directly; use SQL text with it, not pyspark.sql.functions.
        from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

        remote = RemoteSparkSession.builder.remote(url).getOrCreate()
        return cast("SparkSession", remote)
    session: SparkSession = SparkSession.builder.remote(url).getOrCreate()
    return session
