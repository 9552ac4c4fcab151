"""The MQTT connector: persistent session, QoS 1, ack only after bronze is durable.

Why each setting matters: a stable client id with ``clean_start`` off and a session expiry makes
the broker keep QoS 1 messages published while we are away; subscribing in ``on_connect`` keeps
the subscription across reconnects; ``manual_ack`` lets us send PUBACK only once the message is
in a bronze file, so a crash can never lose an acknowledged message. ``receive_maximum`` lets
the broker keep many unacknowledged messages in flight while a buffer fills (each one
is held in memory until its flush, so it also bounds memory).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from workbench.connectors.base import Sink, SourceHealth
from workbench.connectors.envelope import build_envelopes
from workbench.connectors.registry import ConnectorType, SourceContext
from workbench.core.clock import utcnow
from workbench.core.settings import MqttSettings

log = logging.getLogger(__name__)


class MqttConnector:
    """Subscribes to ``settings.topic`` and feeds envelopes to the sink.

    Args:
        name: the source's name.
        ingestion_id: the dataset every message of this source lands in.
        settings: broker address, topic, QoS, client id, credentials.
        sink: where envelopes go (the bronze writer's ``add``).
        time_fields: payload fields tried for the event time.
    """

    type = "mqtt"

    def __init__(
        self,
        name: str,
        ingestion_id: str,
        settings: MqttSettings,
        sink: Sink,
        *,
        time_fields: list[str],
        on_received: Any = None,
    ) -> None:
        self.name = name
        self.ingestion_id = ingestion_id
        self._settings = settings
        self._sink = sink
        self._time_fields = time_fields
        self._on_received = on_received
        self._connected = threading.Event()
        self._running = False
        self._received = 0
        self._last_error: str | None = None
        self._client = self._build_client()

    def _build_client(self) -> mqtt.Client:
        s = self._settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=s.qos > 0,
        )
        if s.username:
            password = s.password.get_secret_value() if s.password is not None else None
            client.username_pw_set(s.username, password)
        if s.tls:
            client.tls_set(ca_certs=s.tls_ca_certs, certfile=s.tls_certfile, keyfile=s.tls_keyfile)
            client.tls_insecure_set(s.tls_insecure)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        s = self._settings
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry_seconds
        props.ReceiveMaximum = s.receive_maximum
        self._running = True
        # connect_async + loop_start: the network thread keeps retrying with backoff if the
        # broker is not up yet, instead of failing the service at start.
        self._client.connect_async(
            s.host, s.port, keepalive=s.keepalive, clean_start=False, properties=props
        )
        self._client.loop_start()
        log.info(
            "mqtt source started name=%s broker=%s:%s topic=%s qos=%s",
            self.name,
            s.host,
            s.port,
            s.topic,
            s.qos,
        )

    def stop(self) -> None:
        self._running = False
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        """True once subscribed (used by tests and ``workbench up``)."""
        return self._connected.wait(timeout)

    def health(self) -> SourceHealth:
        return SourceHealth(
            name=self.name,
            type=self.type,
            ingestion_id=self.ingestion_id,
            running=self._running,
            connected=self._connected.is_set(),
            received=self._received,
            last_error=self._last_error,
            details={"topic": self._settings.topic, "qos": self._settings.qos},
        )

    # -- paho callbacks (network thread) ------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any
    ) -> None:
        if reason_code.is_failure:
            self._last_error = f"connect refused: {reason_code}"
            log.error("mqtt connect refused source=%s reason=%s", self.name, reason_code)
            return
        client.subscribe(subscription(self._settings), qos=self._settings.qos)
        self._last_error = None
        self._connected.set()
        log.info(
            "mqtt connected source=%s session_present=%s",
            self.name,
            getattr(_flags, "session_present", None),
        )

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any
    ) -> None:
        self._connected.clear()
        if self._running:
            self._last_error = f"disconnected: {reason_code}"
            log.warning(
                "mqtt disconnected source=%s reason=%s; reconnecting", self.name, reason_code
            )

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._received += 1
        envelopes = build_envelopes(
            msg.payload,
            ingestion_id=self.ingestion_id,
            source_type=self.type,
            topic=msg.topic,
            received_at=utcnow(),
            time_fields=self._time_fields,
            meta={"qos": msg.qos, "retain": bool(msg.retain), "dup": bool(msg.dup)},
        )
        if self._on_received is not None:
            self._on_received(self.type, self.ingestion_id, len(msg.payload), envelopes)
        if msg.qos == 0:
            self._sink(envelopes, None)
            return
        mid, qos = msg.mid, msg.qos

        # Blocks under back-pressure, which stops this network thread from reading more.
        def ack() -> None:
            client.ack(mid, qos)

        self._sink(envelopes, ack)


def subscription(settings: MqttSettings) -> str:
    """The topic filter to subscribe: shared (``$share/<group>/<topic>``) when a group is set."""
    if settings.shared_group:
        return f"$share/{settings.shared_group}/{settings.topic}"
    return settings.topic


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["topic"],
    "properties": {
        "topic": {"type": "string", "minLength": 1, "description": "topic filter, e.g. sensors/#"},
        "qos": {"enum": [0, 1], "default": 1},
        "host": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "client_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "username": {"type": "string"},
        "password": {
            "type": "string",
            "writeOnly": True,
            "format": "password",
            "description": "prefer WORKBENCH__MQTT__PASSWORD; never shown back",
        },
        "shared_group": {"type": "string", "pattern": "^[^/#+]+$"},
        "keepalive": {"type": "integer", "minimum": 5, "maximum": 3600},
        "tls": {"type": "boolean"},
        "tls_ca_certs": {"type": "string"},
        "tls_certfile": {"type": "string"},
        "tls_keyfile": {"type": "string"},
        "tls_insecure": {"type": "boolean"},
    },
}


def _build(
    name: str, ingestion_id: str, config: dict[str, Any], context: SourceContext
) -> MqttConnector:
    base: MqttSettings = context.defaults["mqtt"]
    overrides = dict(config)
    if isinstance(overrides.get("password"), str):
        # model_copy does not validate: wrap the config's password as the settings type it.
        overrides["password"] = SecretStr(overrides["password"])
    if "client_id" not in overrides and name != context.defaults.get("default_mqtt_source"):
        # Each source needs its own persistent session: a stable id derived from the name.
        overrides["client_id"] = f"{base.client_id}-{name}"
    return MqttConnector(
        name,
        ingestion_id,
        base.model_copy(update=overrides),
        context.sink,
        time_fields=context.time_fields,
        on_received=context.on_received,
    )


CONNECTOR_TYPE = ConnectorType(
    name="mqtt",
    config_schema=CONFIG_SCHEMA,
    factory=_build,
    description="Subscribe to an MQTT topic (QoS 0/1, persistent session, ack after bronze).",
)
