"""The API token a client presents: from the settings, or from the file ``workbench login``
wrote. Never printed: it travels as a :class:`~pydantic.SecretStr` until the header is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from workbench.client.answers import answer_error
from workbench.core.errors import ServiceUnavailableError, UnauthorizedError
from workbench.core.settings import Settings

__all__ = ["auth_headers", "client_token", "save_token", "sign_in", "token_path", "who_am_i"]


def token_path(settings: Settings) -> Path:
    """Where ``workbench login`` keeps the token (``settings.auth.token_file``)."""
    return Path(settings.auth.token_file).expanduser()


def client_token(settings: Settings) -> SecretStr | None:
    """The token this client sends: ``WORKBENCH__AUTH__TOKEN``, else the login file's."""
    if settings.auth.token is not None:
        return settings.auth.token
    path = token_path(settings)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UnauthorizedError(f"cannot read the token file {path}: {err}") from err
    return SecretStr(value) if value else None


def auth_headers(settings: Settings) -> dict[str, str]:
    """The ``Authorization`` header for the client's token (empty without one: the service
    then answers 401 with what to do)."""
    token = client_token(settings)
    return {"authorization": f"Bearer {token.get_secret_value()}"} if token else {}


def save_token(settings: Settings, token: SecretStr) -> Path:
    """Write ``token`` to the login file, readable by its owner only; returns the path."""
    path = token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 before anything is written, so the token is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token.get_secret_value() + "\n")
    os.chmod(path, 0o600)
    return path


def service_urls(settings: Settings) -> list[str]:
    """Both services sign users in; the engine is asked first, the ingest service next."""
    e, i = settings.engine, settings.ingest
    return [f"http://{e.host}:{e.port}", f"http://{i.host}:{i.port}"]


def sign_in(settings: Settings, user: str, password: SecretStr, *, days: float) -> SecretStr:
    """A new token for ``user``, from the first service that answers.

    Raises:
        UnauthorizedError: unknown user or wrong password.
        ServiceUnavailableError: neither service answers.
    """
    body = {"user": user, "password": password.get_secret_value(), "days": days, "label": "login"}
    answer = _first_answer(settings, "POST", "/api/login", json=body)
    return SecretStr(answer["token"])


def who_am_i(settings: Settings, token: SecretStr) -> dict[str, Any]:
    """``{user, role, token_id}`` for ``token``, as a service sees it.

    Raises:
        UnauthorizedError: the token is unknown, expired or revoked.
    """
    headers = {"authorization": f"Bearer {token.get_secret_value()}"}
    return dict(_first_answer(settings, "GET", "/api/me", headers=headers))


def _first_answer(settings: Settings, method: str, path: str, **kwargs: Any) -> Any:
    tried = []
    for url in service_urls(settings):
        try:
            response = httpx.request(method, url + path, timeout=30, **kwargs)
        except httpx.TransportError:
            tried.append(url)
            continue
        if response.status_code in (200, 201):
            return response.json()
        raise answer_error(response)
    raise ServiceUnavailableError(
        f"no workbench service answers at {' or '.join(tried)}; start one (`workbench up`)"
    )
