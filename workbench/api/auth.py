"""Who is calling, and whether they may: the one gate every route of both services passes.

Identity comes only from the ``Authorization: Bearer <token>`` header, looked up in the
catalog (:meth:`workbench.catalog.users.UserTables.identify`); nothing a request says about
itself (a body field, a query parameter, a header naming a user) is ever trusted.

Roles nest: a **viewer** reads dashboards, tiles and alerts; a **user** also computations,
rules, schemas, previews and health; an **admin** also sources, devices, users, stream control,
maintenance and deletes. Each route declares the least role it needs with
``Depends(gate.role("user"))``; the docs' route table lists them (``docs/security.md``).

Failures answer like every other error (:mod:`workbench.api.http_errors`): 401 ``unauthorized``
for a missing, unknown, expired or revoked token, all with the same message, so an answer
never tells which; 403 ``forbidden`` naming the role needed when the token is good but its
role is not enough.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from workbench.catalog.users import Identity, Role
from workbench.core.errors import ForbiddenError, UnauthorizedError

__all__ = ["Gate", "bearer_token", "route_roles"]

#: What every refused token hears (missing, malformed, unknown, expired and revoked alike).
REFUSED = (
    "this route needs 'Authorization: Bearer <token>' with a valid API token "
    "(`workbench login`, or `workbench users token NAME` for an admin to issue one)"
)


def bearer_token(request: Request) -> str | None:
    """The token of a request's ``Authorization: Bearer`` header, if it has one."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class Gate:
    """Authentication and authorization for one service's routes.

    Args:
        identify: the catalog's token look-up (``None`` for a token it does not honour).
        scrape_token: the token Prometheus presents to ``/metrics``; admins' tokens work too.
    """

    def __init__(
        self,
        identify: Callable[[str], Identity | None],
        *,
        scrape_token: SecretStr | None = None,
    ) -> None:
        self._identify = identify
        self._scrape = scrape_token.get_secret_value().encode() if scrape_token else None

    def identity(self, request: Request) -> Identity:
        """The identity of ``request``'s token (kept on ``request.state.identity``).

        Raises:
            UnauthorizedError: no token, or one the catalog does not honour.
        """
        token = bearer_token(request)
        found = self._identify(token) if token else None
        if found is None:
            raise UnauthorizedError(REFUSED)
        request.state.identity = found
        return found

    def role(self, role: Role) -> Any:
        """A route dependency admitting identities with ``role`` or a more privileged one:
        ``dependencies=[gate.role("user")]``, or ``identity: Identity = gate.role("user")``
        (typed ``Any``, as FastAPI's own ``Depends`` is, to serve as a parameter default).

        Sync on purpose: FastAPI runs it in its thread pool, so the catalog read never blocks
        the event loop.
        """

        def dependency(request: Request) -> Identity:
            found = self.identity(request)
            if not found.has_role(role):
                raise ForbiddenError(
                    f"{request.method} {request.url.path} needs the role {role!r}; "
                    f"{found.user!r} is {found.role!r} (an admin can change it: "
                    f"`workbench users role {found.user} --role {role}`)",
                    needs=role,
                    role=found.role,
                )
            return found

        dependency.required_role = role  # type: ignore[attr-defined]  # read by route_roles
        return DependsParam(dependency)

    def scraper(self) -> Any:
        """A dependency for ``/metrics``: the scrape token, or an admin's API token."""

        def dependency(request: Request) -> None:
            token = bearer_token(request)
            # Compared in constant time: a byte-by-byte compare tells how much matched.
            if token and self._scrape and hmac.compare_digest(token.encode(), self._scrape):
                return
            found = self._identify(token) if token else None
            if found is None:
                raise UnauthorizedError(
                    "/metrics needs 'Authorization: Bearer <token>': the scrape token "
                    "(WORKBENCH__AUTH__SCRAPE_TOKEN) or an admin's API token"
                )
            if not found.has_role("admin"):
                raise ForbiddenError("/metrics is for the scrape token and admins", needs="admin")

        dependency.required_role = "scrape token or admin"  # type: ignore[attr-defined]
        return DependsParam(dependency)

    def install_docs(self, app: FastAPI, *, enabled: bool) -> None:
        """Serve the OpenAPI schema to admins only (``GET /openapi.json``), or not at all.

        No Swagger page: a browser page cannot send the bearer header its schema request
        needs. The app must be built with ``docs_url=None, redoc_url=None, openapi_url=None``.
        """
        if not enabled:
            return

        @app.get("/openapi.json", include_in_schema=False, dependencies=[self.role("admin")])
        def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())


def route_roles(app: FastAPI) -> dict[tuple[str, str], str]:
    """``(method, path) -> the least role`` of every route of ``app`` (``open`` for none):
    the route table, read off the routes themselves."""
    from fastapi.routing import APIRoute

    table: dict[tuple[str, str], str] = {}
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        roles = [getattr(dep.call, "required_role", None) for dep in _dependencies(route.dependant)]
        role = next((r for r in roles if r), "open")
        for method in sorted(route.methods - {"HEAD"}):
            table[(method, route.path)] = role
    return table


def _dependencies(dependant: Any) -> list[Any]:
    found = list(dependant.dependencies)
    for dep in dependant.dependencies:
        found += _dependencies(dep)
    return found
