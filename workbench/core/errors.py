"""The error hierarchy.

One root, :class:`WorkbenchError`. Every stage raises its own subclass carrying structured
fields and a stable ``code``; services decide whether to retry from the :class:`Transient`
and :class:`Terminal` markers, never from the message text.
"""

from __future__ import annotations

from typing import Any


class WorkbenchError(Exception):
    """Root of every error the workbench raises on purpose.

    Args:
        message: what went wrong, where, and what to do next.
        **fields: structured context (source, table, rule id, field...) shown in logs and APIs.
    """

    code = "workbench_error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-friendly mapping (used by the HTTP APIs and the CLI)."""
        return {"code": self.code, "message": self.message, **self.fields}


class Transient:
    """Marker: the condition may clear by itself (broker away, store down); retry with backoff."""


class Terminal:
    """Marker: retrying cannot help; stop the component and surface the error."""


class ConfigError(WorkbenchError, Terminal):
    """A setting or a config file is invalid."""

    code = "config_error"


class ServiceUnavailableError(WorkbenchError, Transient):
    """A service the workbench talks to (broker, engine, object store) cannot be reached."""

    code = "service_unavailable"


class PayloadError(WorkbenchError, Terminal):
    """A message or request body cannot be accepted as given."""

    code = "payload_error"


class StorageError(WorkbenchError, Transient):
    """Writing to or reading from the lake failed."""

    code = "storage_error"


class CatalogError(WorkbenchError, Terminal):
    """The catalog refused an operation (unknown name, duplicate, invalid record)."""

    code = "catalog_error"


class NotFoundError(CatalogError):
    """A named object does not exist in the catalog."""

    code = "not_found"


class ComputationError(WorkbenchError, Terminal):
    """A computation is invalid or failed to run."""

    code = "computation_error"


class EngineError(WorkbenchError, Transient):
    """The Spark engine failed to run a query or a stream."""

    code = "engine_error"
