"""The error a workbench HTTP answer stands for, shared by the Python clients of both services.

The services answer errors as ``{code, message, ...}`` (see ``WorkbenchError.to_dict``) or, for
request validation, FastAPI's ``{detail}``; the status picks the error class.
"""

from __future__ import annotations

import httpx

from workbench.core.errors import CatalogError, ConfigError, NotFoundError, WorkbenchError

_ERRORS: dict[int, type[WorkbenchError]] = {404: NotFoundError, 409: CatalogError, 422: ConfigError}


def answer_error(response: httpx.Response) -> WorkbenchError:
    """The :class:`WorkbenchError` (subclass by status) for an unsuccessful answer."""
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text}
    if not isinstance(body, dict):
        body = {"message": response.text}
    message = body.get("message") or body.get("detail") or response.text
    error = _ERRORS.get(response.status_code, WorkbenchError)
    extra = {k: v for k, v in body.items() if k not in {"message", "code"}}
    return error(str(message), status=response.status_code, **extra)
