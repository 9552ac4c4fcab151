"""The error hierarchy, and whether an error is worth retrying.

One root, :class:`WorkbenchError`. Every stage raises its own subclass carrying structured
fields, a stable ``code`` and the HTTP ``status`` both services answer it with; services decide
whether to retry from the :class:`Transient` and :class:`Terminal` markers, never from the
message text.

The retry policy, shared by every retry loop (micro-batches, the stream manager, the bronze
flusher, the maintenance schedule):

- **Terminal** (:func:`is_terminal`): never retried. The component stops and reports the
  error's code in its status, metrics and logs.
- **Transient** (:func:`is_transient`): the ``Transient`` marker, or an OS error that means
  "the other side is away for now" (:data:`TRANSIENT_OS_ERRORS`). Retried with backoff.
- **Unknown** (neither): a Spark or Py4J failure, a bug. A lost executor looks the same as a
  bad plan from here, so each loop retries it a bounded number of times (its own attempts,
  or :data:`UNKNOWN_ATTEMPTS`) and then treats it as terminal or hands it up. Nothing retries
  without a bound on its attempts or on its backoff.

:func:`error_class` rebuilds the class from a code, so a client raises what the service raised.
"""

from __future__ import annotations

import re
from typing import Any


class Transient:
    """Marker: the condition may clear by itself (broker away, store down); retry with backoff."""


class Terminal:
    """Marker: retrying cannot help; stop the component and surface the error."""


#: OS errors that mean a peer or a resource is away for now (refused, reset, timed out).
TRANSIENT_OS_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

#: Consecutive failures of an unknown error a loop without attempts of its own tries.
UNKNOWN_ATTEMPTS = 3


class WorkbenchError(Exception):
    """Root of every error the workbench raises on purpose.

    Class attributes ``code`` (stable, in logs, metrics and HTTP bodies) and ``status`` (the
    HTTP status both services answer it with) are the one table of error classes.

    Args:
        message: what went wrong, where, and what to do next.
        **fields: structured context (source, table, rule id, field...) shown in logs and APIs.
    """

    code = "workbench_error"
    status = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        """The error as the JSON body of an HTTP answer: ``{code, message, fields}``."""
        return {"code": self.code, "message": self.message, "fields": dict(self.fields)}


class InternalError(WorkbenchError, Terminal):
    """An unexpected failure (a bug) that retrying did not clear."""

    code = "internal_error"
    status = 500


class ConfigError(WorkbenchError, Terminal):
    """A setting or a config file is invalid."""

    code = "config_error"
    status = 422


class InvalidRequestError(ConfigError):
    """An HTTP request body or parameter does not validate (``fields["problems"]`` says how)."""

    code = "invalid_request"
    status = 422


class ServiceUnavailableError(WorkbenchError, Transient):
    """A service the workbench talks to (broker, engine, object store) cannot be reached."""

    code = "service_unavailable"
    status = 503


class StorageError(WorkbenchError, Transient):
    """Writing to or reading from the lake failed."""

    code = "storage_error"
    status = 503


class CatalogError(WorkbenchError, Terminal):
    """The catalog refused an operation (unknown name, duplicate, invalid record)."""

    code = "catalog_error"
    status = 409


class NotFoundError(CatalogError):
    """A named object (in the catalog, or a file or layer of the lake) does not exist."""

    code = "not_found"
    status = 404


class ComputationError(WorkbenchError, Terminal):
    """A computation is invalid or failed to run."""

    code = "computation_error"
    status = 422


# The query service's refusals live here, not beside it: a client that never loads the
# engine's code (the CLI, a kernel) must rebuild them from their code, not from the status.
class QueryRefused(ComputationError):
    """The query is not one the workbench runs; the message says what and why."""

    code = "query_refused"


class QueryTimeoutError(ComputationError):
    """The query ran past its timeout; its Spark jobs were cancelled."""

    code = "query_timeout"
    status = 504


class EngineError(WorkbenchError, Transient):
    """The Spark engine failed to run a query or a stream."""

    code = "engine_error"
    status = 503


class SourceError(WorkbenchError, Terminal):
    """A source answered something that cannot be ingested (an HTTP error, no records)."""

    code = "source_error"
    status = 502


class UnauthorizedError(WorkbenchError, Terminal):
    """A request lacks the credentials its target requires."""

    code = "unauthorized"
    status = 401


class ForbiddenError(WorkbenchError, Terminal):
    """The caller is known but its role or clearance does not allow this."""

    code = "forbidden"
    status = 403


class SensitivityDenied(ForbiddenError):
    """The result holds data above the caller's clearance; the message names the device and
    label that blocked it and the clearance it needs."""

    code = "sensitivity_denied"


class PayloadTooLargeError(WorkbenchError, Terminal):
    """A request body exceeds its size limit; split it."""

    code = "payload_too_large"
    status = 413


def is_terminal(err: BaseException) -> bool:
    """True when retrying cannot help: the error is marked :class:`Terminal`."""
    return isinstance(err, Terminal)


def is_transient(err: BaseException) -> bool:
    """True when the error may clear by itself: marked :class:`Transient`, or an OS error of
    :data:`TRANSIENT_OS_ERRORS`. A terminal marker wins over everything."""
    if isinstance(err, Terminal):
        return False
    return isinstance(err, (Transient, *TRANSIENT_OS_ERRORS))


def should_retry(err: BaseException, failures: int, *, unknown_attempts: int) -> bool:
    """Whether a loop retries ``err`` after ``failures`` consecutive failures (this one too).

    Terminal: never. Transient: always (the loop bounds its backoff). Unknown: while fewer than
    ``unknown_attempts`` tries have failed.
    """
    if is_terminal(err):
        return False
    if is_transient(err):
        return True
    return failures < unknown_attempts


def error_code(err: BaseException) -> str:
    """The stable code of ``err``: its own for a :class:`WorkbenchError`, else the class name
    in snake case (``OSError`` → ``os_error``), for logs and metric labels."""
    if isinstance(err, WorkbenchError):
        return err.code
    return _WORD_START.sub("_", type(err).__name__).lower()


_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _subclasses(root: type[WorkbenchError]) -> list[type[WorkbenchError]]:
    """Every loaded subclass of ``root``, ``root`` first, parents before children."""
    found = [root]
    for sub in root.__subclasses__():
        found += _subclasses(sub)
    return found


def error_classes() -> dict[str, type[WorkbenchError]]:
    """Every loaded error class by its code (the first class to claim a code keeps it)."""
    by_code: dict[str, type[WorkbenchError]] = {}
    for cls in _subclasses(WorkbenchError):
        by_code.setdefault(cls.code, cls)
    return by_code


def error_class(code: str | None, status: int | None = None) -> type[WorkbenchError]:
    """The error class of ``code``; for an unknown code, the most general class answered with
    ``status`` (:class:`ServiceUnavailableError` for 503); :class:`WorkbenchError` otherwise."""
    classes = error_classes()
    if code is not None and code in classes:
        return classes[code]
    for cls in classes.values():
        if cls.status == status:
            return cls
    return WorkbenchError
