"""Connector types by name: built-ins in one place, third parties by entry point.

A connector type is a name, a JSON schema for its config, and a factory. Third-party packages
register types under the ``workbench.connectors`` entry-point group, each entry pointing at a
:class:`ConnectorType`; they are loaded lazily, the first time an unknown name is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from workbench.connectors.base import Connector, Sink
from workbench.core.errors import ConfigError
from workbench.core.masking import mask_config, mask_text, restore_masked

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.connectors"


@dataclass(frozen=True)
class SourceContext:
    """What the ingest service hands every connector it builds."""

    sink: Sink
    time_fields: list[str]
    on_received: Callable[..., None] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    """Per-type defaults from settings (e.g. the broker address for MQTT sources)."""


Factory = Callable[[str, str, dict[str, Any], SourceContext], Connector | None]
"""``(name, ingestion_id, config, context) -> connector``; None for passive types (REST push,
served by the ingest HTTP API rather than running on its own)."""


@dataclass(frozen=True)
class ConnectorType:
    """One kind of source."""

    name: str
    config_schema: dict[str, Any]
    factory: Factory
    description: str = ""


class ConnectorRegistry:
    """Connector types by name. Build one per process with :func:`default_registry`."""

    def __init__(self) -> None:
        self._types: dict[str, ConnectorType] = {}
        self._entry_points_loaded = False

    def register(self, kind: ConnectorType) -> None:
        """Add a type; a name can be registered once."""
        if kind.name in self._types:
            raise ConfigError(f"connector type {kind.name!r} is already registered")
        self._types[kind.name] = kind

    def get(self, name: str) -> ConnectorType:
        """The type called ``name``.

        Raises:
            ConfigError: naming the known types.
        """
        if name not in self._types and not self._entry_points_loaded:
            self._load_entry_points()
        try:
            return self._types[name]
        except KeyError:
            raise ConfigError(
                f"unknown connector type {name!r}; known: {', '.join(self.names())}",
                type=name,
            ) from None

    def names(self) -> list[str]:
        """Registered type names, sorted."""
        return sorted(self._types)

    def validate(self, name: str, config: dict[str, Any]) -> None:
        """Check a source config against its type's schema, reporting every error at once.

        Raises:
            ConfigError: with ``problems``, one entry per error with its JSON path.
        """
        # Imported on first use: jsonschema and its dependencies cost ~30 MB of RSS, and only
        # source creation or update needs them.
        from jsonschema import Draft202012Validator

        kind = self.get(name)
        validator = Draft202012Validator(kind.config_schema)
        masked = mask_config(config, kind.config_schema)
        problems = [
            {
                "path": "/".join(str(p) for p in err.absolute_path) or "(root)",
                "error": _masked_message(err.message, err.instance, _at(masked, err.absolute_path)),
            }
            for err in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        ]
        if problems:
            listed = "; ".join(f"{p['path']}: {p['error']}" for p in problems)
            raise ConfigError(
                f"invalid {name} source config ({len(problems)} problem(s)): {listed}",
                type=name,
                problems=problems,
            )

    def public_config(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with its secrets masked, as every answer and log line must show it.

        An unknown type (a plugin since uninstalled) is masked by field and header names alone.
        """
        return mask_config(config, self._schema_or_none(name))

    def restore_config(
        self, name: str, new: dict[str, Any], stored: dict[str, Any]
    ) -> dict[str, Any]:
        """``new`` with the masks a client echoed back replaced by the ``stored`` secrets.

        Raises:
            ConfigError: where ``new`` holds a mask that no stored secret matches.
        """
        try:
            return restore_masked(new, stored, self._schema_or_none(name))
        except ValueError as err:
            raise ConfigError(f"invalid {name} source config: {err}", type=name) from None

    def _schema_or_none(self, name: str) -> dict[str, Any] | None:
        try:
            return self.get(name).config_schema
        except ConfigError:
            return None

    def _load_entry_points(self) -> None:
        self._entry_points_loaded = True
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                kind = entry.load()
            except Exception as err:  # noqa: BLE001 - a broken plugin must not stop ingestion
                log.error("cannot load connector plugin entry=%s error=%s", entry.value, err)
                continue
            if not isinstance(kind, ConnectorType):
                log.error("connector plugin %s is not a ConnectorType; ignored", entry.value)
                continue
            if kind.name not in self._types:
                self._types[kind.name] = kind


def _at(value: Any, path: Any) -> Any:
    for part in path:
        if (isinstance(value, dict) and part in value) or (
            isinstance(value, list) and isinstance(part, int) and part < len(value)
        ):
            value = value[part]
        else:
            return None
    return value


def _masked_message(message: str, instance: Any, masked: Any) -> str:
    """A schema error's message without the secrets of the value it quotes.

    jsonschema quotes the offending value (``'short' is too short``); error answers and logs
    must not, so the quote of the value is replaced by the quote of its masked form.
    """
    if masked == instance:
        return message
    # Messages that do not quote the value name only keys ("'x' was unexpected").
    return mask_text(message.replace(repr(instance), repr(masked)))


def default_registry() -> ConnectorRegistry:
    """A registry holding the built-in types (MQTT, REST push, REST poll)."""
    from workbench.connectors import mqtt, rest_poll, rest_push

    registry = ConnectorRegistry()
    for module in (mqtt, rest_push, rest_poll):
        registry.register(module.CONNECTOR_TYPE)
    return registry
