"""Errors over HTTP, both ways, for both services and their Python clients.

A service answers a :class:`WorkbenchError` with the class's ``status`` and the body
``{"code", "message", "fields"}`` (:meth:`WorkbenchError.to_dict`);
:func:`install_error_handlers` installs that on an app, for FastAPI's request validation too
(:class:`InvalidRequestError`, 422, the problems in ``fields["problems"]``) and for an
unexpected exception (:class:`InternalError`, 500). A client rebuilds the same class from the
code with :func:`workbench.client.answers.answer_error` (from the status when the code is
unknown), so a transient error on the service is a transient error for the caller.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from workbench.core.errors import (
    InternalError,
    InvalidRequestError,
    WorkbenchError,
    is_terminal,
)
from workbench.core.masking import mask_text

log = logging.getLogger(__name__)


def error_response(err: WorkbenchError) -> JSONResponse:
    """The HTTP answer for ``err``: its class's status, ``{code, message, fields}``.

    Every text in it is masked (:func:`~workbench.core.masking.mask_text`): a message may
    quote a URL or a header that carries credentials, and this is the one place every error
    answer passes through.
    """
    # Fields are context (paths, times, ids): whatever JSON cannot hold goes as text.
    body = json.loads(json.dumps(err.to_dict(), default=str), object_hook=_masked)
    return JSONResponse(body, status_code=err.status)


def _masked(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: mask_text(v) if isinstance(v, str) else v for k, v in mapping.items()}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error raised by ``app``'s routes as :func:`error_response` does."""

    @app.exception_handler(WorkbenchError)
    async def workbench_error(_request: Request, err: WorkbenchError) -> JSONResponse:
        if not is_terminal(err):
            log.warning("request failed code=%s error=%s", err.code, mask_text(err.message))
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in err.errors()
        ]
        listed = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems)
        return error_response(InvalidRequestError(f"invalid request: {listed}", problems=problems))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, err: Exception) -> JSONResponse:
        log.error(
            "request failed unexpectedly code=internal_error error=%s",
            mask_text(f"{type(err).__name__}: {err}"),
        )
        return error_response(InternalError(f"{type(err).__name__}: {err}"))
