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
        problems = [
            {"path": "/".join(str(p) for p in err.absolute_path) or "(root)", "error": err.message}
            for err in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        ]
        if problems:
            listed = "; ".join(f"{p['path']}: {p['error']}" for p in problems)
            raise ConfigError(
                f"invalid {name} source config ({len(problems)} problem(s)): {listed}",
                type=name,
                problems=problems,
            )

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


def default_registry() -> ConnectorRegistry:
    """A registry holding the built-in types (MQTT, REST push, REST poll)."""
    from workbench.connectors import mqtt, rest_poll, rest_push

    registry = ConnectorRegistry()
    for module in (mqtt, rest_push, rest_poll):
        registry.register(module.CONNECTOR_TYPE)
    return registry
