"""Typed settings, built once at an entry point and passed down.

Sources, highest precedence first: keyword arguments, environment variables
``WORKBENCH__<SECTION>__<KEY>`` (for example ``WORKBENCH__MQTT__PORT=1884``), the TOML file named
by ``WORKBENCH__CONFIG`` or ``./workbench.toml`` if present, then the defaults below. The defaults
are the embedded demo: a lake and a SQLite catalog under ``./.workbench``, a local broker, local
Spark.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from workbench.core.errors import ConfigError
from workbench.core.masking import MASK, mask_text, mask_url, secret_field


class LakeSettings(BaseModel):
    """Where the data lives."""

    root: str = ".workbench/lake"
    """Lake root: a local directory (default) or ``s3a://bucket/prefix``."""

    @property
    def bronze(self) -> str:
        """Bronze Parquet files: ``bronze/ingestion_id=/date=/hour=/part-*.parquet``."""
        return f"{self.root}/bronze"

    @property
    def silver_readings(self) -> str:
        """The silver Delta table every source is normalized into."""
        return f"{self.root}/silver/readings"

    def gold(self, name: str) -> str:
        """A gold Delta table."""
        return f"{self.root}/gold/{name}"

    @property
    def silver_held(self) -> str:
        """Rows of unregistered or disabled devices, held until they may flow."""
        return f"{self.root}/silver/_held"

    @property
    def checkpoints(self) -> str:
        """Streaming checkpoints, one folder per query."""
        return f"{self.root}/_checkpoints"

    @property
    def quarantine(self) -> str:
        """Messages that cannot become bronze rows, with a reason."""
        return f"{self.root}/_quarantine"


class S3Settings(BaseModel):
    """The object store behind an ``s3a://bucket/prefix`` lake root (MinIO or any S3)."""

    endpoint: str = "127.0.0.1:9000"
    """``host:port`` of the S3 API."""
    access_key: SecretStr | None = None
    """Access key id. Treated as a secret too: with the endpoint it names whose keys to try."""
    secret_key: SecretStr | None = None
    """Credentials come from the environment or a secret file, never from code or logs; read
    them with ``.get_secret_value()`` where they are used, and nowhere else."""
    region: str = "us-east-1"
    secure: bool = False
    """HTTPS to the endpoint."""
    spill_dir: str = ".workbench/spill"
    """Where bronze batches wait, in order, while the object store is unreachable."""
    timeout_seconds: float = 10.0
    """Connect and read timeout of one S3 request; a store that does not answer in time is
    treated as down and the batch spills."""
    spill_retry_max_seconds: float = 5.0
    """Longest wait between two attempts to upload the oldest spilled batch."""


class CatalogSettings(BaseModel):
    """The catalog database (sources, schemas, rules, computations...)."""

    url: str = "sqlite:///.workbench/catalog.db"
    """SQLAlchemy URL: SQLite (default, WAL mode) or ``postgresql+psycopg://...`` for multi-host.
    A password in it is masked wherever settings are shown (SQLAlchemy needs the plain URL)."""
    field_stale_seconds: Annotated[float, Field(gt=0)] = 86_400.0
    """A field absent this long while its dataset keeps arriving gets one ``not_seen`` event in
    the schema evolution log (re-armed when the field shows up again)."""

    def __repr_args__(self) -> Any:
        # repr() and str() end up in tracebacks and log lines: never with the URL's password.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" and isinstance(value, str) else value


class MqttSettings(BaseModel):
    """The broker the default MQTT source and the simulators talk to."""

    host: str = "127.0.0.1"
    port: int = 1883
    topic: str = "sensors/#"
    """Topic filter of the default MQTT source."""
    qos: Annotated[int, Field(ge=0, le=1)] = 1
    client_id: str = "workbench-ingest"
    """Stable client id: with a persistent session the broker keeps messages while we are away."""
    username: str | None = None
    password: SecretStr | None = None
    keepalive: int = 30
    session_expiry_seconds: int = 7 * 24 * 3600
    receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 20_000
    """Unacknowledged QoS 1 messages the broker may send us (MQTT 5 receive maximum). They wait
    in memory until their bronze flush, so this bounds memory; it must exceed the messages
    arriving during one ``ingest.flush_seconds``."""
    shared_group: str | None = None
    """Subscribe as ``$share/<group>/<topic>`` so several ingest processes split the topic."""
    tls: bool = False
    tls_ca_certs: str | None = None
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_insecure: bool = False
    """Skip hostname verification (test brokers only)."""
    embedded: bool = True
    """``workbench up`` starts a local Mosquitto when true."""


class IngestSettings(BaseModel):
    """The ingest service (no JVM)."""

    host: str = "127.0.0.1"
    port: int = 8701
    flush_rows: int = 20_000
    """Flush a dataset's buffer once it holds this many rows..."""
    flush_bytes: int = 8 * 1024 * 1024
    """...or this many payload bytes..."""
    flush_seconds: float = 1.0
    """...or when its oldest row is this old."""
    max_buffer_bytes: int = 64 * 1024 * 1024
    """Above this, connectors stop reading (back-pressure) until a flush frees room."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest accepted REST push body."""
    metadata_batch_size: int = 10_000
    """Write metadata to the catalog after this many records, or every
    ``metadata_batch_seconds``: counts are exact either way, and small batches only cost catalog
    transactions at high rates."""
    metadata_batch_seconds: float = 5.0
    time_fields: list[str] = Field(
        default_factory=lambda: ["timestamp", "ts", "time", "event_time", "datetime"]
    )
    """Payload fields tried, in order, for the event time."""


class SparkSettings(BaseModel):
    """How Spark sessions are built (one factory, see ``workbench.spark.session``)."""

    master: str = "local[2]"
    jar_cache: str = ".workbench/jars"
    """Directory holding the JVM jars fetched by ``make setup`` (Maven)."""
    driver_memory: str = "2g"
    shuffle_partitions: int = 2
    """Partitions after a shuffle: one per task slot of ``master``. Every partition is a task
    per micro-batch, with its fixed cost (at 1,000 msg/s, 2 instead of 4 took the enrichment's
    p50 batch from 1.8 to 1.3 s). A stream keeps the count its checkpoint started with."""
    ui: bool = False
    extra_conf: dict[str, str] = Field(default_factory=dict)


class EngineSettings(BaseModel):
    """The engine service: Spark driver, streams, Spark Connect, HTTP API."""

    host: str = "127.0.0.1"
    port: int = 8702
    connect_port: int = 15002
    enrichment_trigger_seconds: float = 2.0
    gold_trigger_seconds: float = 5.0
    max_files_per_trigger: int = 500
    window: str = "1 minute"
    """Gold aggregation window (event time)."""
    watermark: str = "2 minutes"
    """How late an event may arrive for streaming aggregations that keep state."""
    device_policy: Literal["auto_register", "require_approval"] = "auto_register"
    """Data of an unregistered source: register it as a device (sensitivity ``internal``) and
    let it flow, or hold it in ``silver/_held`` until someone registers it."""
    batch_attempts: Annotated[int, Field(ge=1)] = 3
    """Tries of a failing micro-batch (with backoff) before its query fails and is restarted."""
    query_max_rows: Annotated[int, Field(ge=1)] = 100_000
    """The most rows any query returns (a query's own limit defaults to 1,000)."""
    query_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    """How long a query may run unless it asks for less; its Spark jobs are then cancelled."""
    live_horizon_seconds: Annotated[float, Field(gt=0)] = 600.0
    """A reading older than this (event time) when it reaches a layer is historical (a backfill,
    a replay, a device's buffer emptied late): it is counted apart from the latency histograms,
    so those keep describing live sensors."""
    dedupe_minutes: Annotated[float, Field(ge=0)] = 15.0
    """Bronze rows repeating a ``message_id`` seen within this many minutes of processing time
    are dropped before silver (redeliveries after an ingest crash); 0 disables."""

    @property
    def connect_url(self) -> str:
        """The Spark Connect URL thin clients use."""
        return f"sc://{self.host}:{self.connect_port}"


class VoilaSettings(BaseModel):
    """The stakeholder dashboard server."""

    host: str = "127.0.0.1"
    port: int = 8866
    refresh_seconds: float = 15.0
    """Tile auto-refresh interval (minimum 15 s, as in the seed)."""

    @field_validator("refresh_seconds")
    @classmethod
    def _not_too_often(cls, value: float) -> float:
        if value < 5:
            raise ValueError("tiles refresh at most every 5 seconds")
        return value


class SimulatorSettings(BaseModel):
    """The demo sensors (``workbench simulate``)."""

    sensors: Annotated[int, Field(ge=1)] = 5
    """Sensors per kind; ids are stable (``temp-001``...) so a restart continues the same fleet."""
    interval_seconds: Annotated[float, Field(gt=0)] = 1.0
    """One reading per sensor this often (also the REST API simulator's refresh interval)."""
    topic_prefix: str = "sensors"
    """Readings go to ``<topic_prefix>/<kind>/<sensor_id>``."""
    seed: int = 42
    """Seed of the readings' random noise: the same seed gives the same values."""
    sequence_numbers: bool = False
    """Add a per-sensor ``seq`` (1, 2, ...) to every payload, persisted across restarts."""
    edge_buffer_max_messages: Annotated[int, Field(ge=1)] = 100_000
    """Bound of the on-disk edge buffer (``<home>/edge/<kind>``) holding unacknowledged messages."""
    edge_buffer_drop: Literal["oldest", "newest"] = "oldest"
    """Which messages a full edge buffer drops (each drop is logged and counted)."""
    inflight_messages: Annotated[int, Field(ge=1)] = 100
    """QoS 1 messages handed to the broker and awaiting PUBACK at any time."""
    reconnect_max_delay_seconds: Annotated[int, Field(ge=1)] = 10
    """Cap of the reconnect backoff while the broker is unreachable."""
    drain_timeout_seconds: Annotated[float, Field(ge=0)] = 10.0
    """On stop, wait this long for the broker to acknowledge what is buffered (the rest stays
    on disk for the next start)."""
    rest_host: str = "127.0.0.1"
    """Interface of the REST API simulator (loopback by default)."""
    rest_port: int = 8710
    """Port of the REST API simulator."""
    rest_token: SecretStr | None = None
    """Bearer token the REST API simulator requires when set (from env/secret file, never code)."""
    rest_history: Annotated[int, Field(ge=1)] = 1000
    """Readings the REST API simulator keeps per kind (the most ``limit`` can return)."""
    replay_file: str | None = None
    """NDJSON recording the replay simulator publishes (default: the packaged recording)."""
    replay_speed: Annotated[float, Field(ge=0)] = 1.0
    """Replay timing: 1 keeps the recorded gaps, 10 is ten times faster, 0 as fast as possible."""
    replay_shift_timestamps: bool = True
    """Shift recorded payload timestamps to the replay time (false keeps them as recorded)."""


class MaintenanceSettings(BaseModel):
    """Lake maintenance: retention, compaction and VACUUM, from the CLI and on a schedule."""

    bronze_retention_days: Annotated[int, Field(ge=1)] | None = None
    """Bronze ``date=`` partitions older than this many days are deleted (None: keep forever)."""
    silver_retention_days: Annotated[int, Field(ge=1)] | None = None
    """Silver rows of days older than this are deleted (None: keep forever). A device's
    ``retention_days`` overrides it for that device."""
    gold_retention_days: Annotated[int, Field(ge=1)] | None = None
    """Gold rows whose window is older than this are deleted (None: keep forever). A device's
    ``retention_days`` overrides it for that device."""
    vacuum_retain_hours: Annotated[float, Field(ge=0)] = 168.0
    """VACUUM removes files a table stopped referencing more than this long ago. Readers and
    streams still on an older version need them, so Delta refuses less than 168 h (7 days)
    unless ``allow_short_vacuum_retention`` is set."""
    allow_short_vacuum_retention: bool = False
    """Allow ``vacuum_retain_hours`` below 168 (turns off Delta's retention safety check for
    the VACUUM only). A reader or stream older than the retention can then fail."""
    compaction_min_files: Annotated[int, Field(ge=2)] = 8
    """Compact a partition (or an unpartitioned table) only once it has this many files."""
    interval_seconds: Annotated[float, Field(ge=0)] = 3600.0
    """The engine runs retention, compaction and VACUUM this often (0: never on a schedule)."""

    @model_validator(mode="after")
    def _safe_vacuum(self) -> MaintenanceSettings:
        # Refused at start-up rather than by every scheduled VACUUM, hours later.
        if self.vacuum_retain_hours < 168 and not self.allow_short_vacuum_retention:
            raise ValueError(
                f"vacuum_retain_hours={self.vacuum_retain_hours:g} is below Delta's safe 168 h; "
                "raise it or set allow_short_vacuum_retention=true"
            )
        return self


class AuthSettings(BaseModel):
    """Who may call the services, and the secrets services hold (never printed).

    Every HTTP route but the bare liveness ``/health`` needs an API token
    (``Authorization: Bearer wbt_...``); users and tokens live in the catalog
    (``workbench users``). Clients (the CLI, kernels, Voila apps) take theirs from ``token`` or,
    when unset, from ``token_file`` (written by ``workbench login``).
    """

    token: SecretStr | None = None
    """The API token this client sends (``WORKBENCH__AUTH__TOKEN``)."""
    token_file: str = "~/.config/workbench/token"
    """Where ``workbench login`` keeps the token (mode 0600)."""
    scrape_token: SecretStr | None = None
    """Bearer token Prometheus presents to ``/metrics`` (admin API tokens work too)."""
    connect_token: SecretStr | None = None
    """Spark Connect's own token: held by the services and admins only. ``workbench up``
    generates one when unset; an engine serving Spark Connect without one refuses to start."""
    api_docs: bool = False
    """Serve the OpenAPI docs (``/docs``, ``/openapi.json``) to admins."""


class Settings(BaseSettings):
    """Every setting of the workbench, grouped by section."""

    model_config = SettingsConfigDict(
        env_prefix="WORKBENCH__",
        env_nested_delimiter="__",
        extra="forbid",
    )

    home: str = ".workbench"
    """Working directory of the embedded stack (logs, broker data, pid files)."""
    lake: LakeSettings = Field(default_factory=LakeSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    voila: VoilaSettings = Field(default_factory=VoilaSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    """Retention per layer, compaction, VACUUM and their schedule."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _absolute_local_paths(self) -> Settings:
        # Spark, subprocesses and the SQLite driver each resolve relative paths against their own
        # working directory; resolving once here makes every process agree.
        self.home = str(Path(self.home).resolve())
        if "://" not in self.lake.root:
            self.lake.root = str(Path(self.lake.root).resolve())
        self.spark.jar_cache = str(Path(self.spark.jar_cache).resolve())
        self.s3.spill_dir = str(Path(self.s3.spill_dir).resolve())
        prefix = "sqlite:///"
        if self.catalog.url.startswith(prefix) and not self.catalog.url.startswith(prefix + "/"):
            db = Path(self.catalog.url.removeprefix(prefix)).resolve()
            self.catalog.url = f"{prefix}{db}"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("WORKBENCH__CONFIG", "workbench.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
            file_secret_settings,
        )


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once, at an entry point.

    Raises:
        ConfigError: listing every invalid setting with where it came from.
    """
    try:
        return Settings(**overrides)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(
            f"invalid settings ({err.error_count()} problem(s)): {problems}. "
            "Settings come from WORKBENCH__SECTION__KEY environment variables and workbench.toml.",
            problems=[dict(loc=list(e["loc"]), msg=e["msg"]) for e in err.errors()],
        ) from err


def ensure_local_dirs(settings: Settings) -> None:
    """Create the local directories the embedded default needs (no-op for ``s3a://`` lakes)."""
    Path(settings.home).mkdir(parents=True, exist_ok=True)
    if "://" not in settings.lake.root:
        Path(settings.lake.root).mkdir(parents=True, exist_ok=True)
    if settings.catalog.url.startswith("sqlite:///"):
        Path(settings.catalog.url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``WORKBENCH__SECTION__KEY`` variables, to hand to a child process.

    Secrets are passed as their real values (the child needs them): the result is an
    environment, never something to print or log.
    """
    env: dict[str, str] = {}
    for section, value in settings.model_dump(mode="json").items():
        if isinstance(value, dict):
            model = getattr(settings, section)
            for key, item in value.items():
                raw = getattr(model, key, None)
                if isinstance(raw, SecretStr):
                    # The JSON dump shows secrets as asterisks; the child needs the value.
                    item = raw.get_secret_value()
                if item is None:
                    continue
                env[f"WORKBENCH__{section.upper()}__{key.upper()}"] = _env_value(item)
        else:
            env[f"WORKBENCH__{section.upper()}"] = _env_value(value)
    return env


def public_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready data with every secret masked: what may be shown.

    A secret that is set reads ``***``, one that is not ``None``; credentials in URLs (a
    PostgreSQL catalog's password) and Spark options named like secrets
    (``spark.hadoop.fs.s3a.secret.key``) are masked too.
    """
    data = settings.model_dump(mode="json")
    for section, value in data.items():
        if not isinstance(value, dict):
            data[section] = mask_text(value) if isinstance(value, str) else value
            continue
        model = getattr(settings, section)
        for key, item in value.items():
            raw = getattr(model, key, None)
            if isinstance(raw, SecretStr):
                value[key] = MASK
            elif isinstance(item, str):
                value[key] = mask_text(item)
            elif isinstance(item, dict):
                value[key] = {
                    k: MASK if secret_field(k) else mask_text(v) if isinstance(v, str) else v
                    for k, v in item.items()
                }
    return data


def _env_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value)
    return str(value)
