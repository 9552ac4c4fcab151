"""Service answers back into errors: a client raises the class the service raised."""

from __future__ import annotations

from typing import Any

import httpx

from workbench.core.errors import WorkbenchError, error_class

__all__ = ["answer_error"]


def answer_error(response: httpx.Response) -> WorkbenchError:
    """The :class:`WorkbenchError` an unsuccessful answer stands for: the class of its code,
    or of its status when the body has no known code (a proxy's page, a route not found)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": response.text}
    message = body.get("message") or body.get("detail") or response.text
    fields = body.get("fields")
    if not isinstance(fields, dict):
        fields = {}
    cls = error_class(body.get("code"), response.status_code)
    try:
        return cls(str(message), **fields)
    except TypeError:  # a class with a constructor of its own: keep the code's meaning in text
        return WorkbenchError(str(message), **fields)
