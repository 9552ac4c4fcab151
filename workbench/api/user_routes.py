"""HTTP routes for signing in and for users and their tokens, served by both services.

``POST /api/login`` ``{user, password, days?, label?}`` (open: it is how a token is obtained)
answers ``{token, user, role, expires_at}``; ``GET /api/me`` (any role) who the token speaks
for; ``GET /api/tokens`` and ``DELETE /api/tokens/{id}`` one's own tokens (admins: anyone's).
Admins only: ``GET|POST /api/users`` (``{name, role, password?}`` answers the user and a first
token, shown once), ``DELETE /api/users/{name}``, ``POST /api/users/{name}/tokens``.
A token's value appears in exactly one answer, the one that issued it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, SecretStr

from workbench.api.auth import Gate
from workbench.catalog.store import Catalog
from workbench.catalog.users import DEFAULT_TOKEN_DAYS, Identity, IssuedToken, Role
from workbench.core.errors import ForbiddenError, NotFoundError, UnauthorizedError

#: The one answer every failed sign-in gets (unknown user, wrong password, token-only user).
LOGIN_REFUSED = "unknown user or wrong password"


class LoginIn(BaseModel):
    """A sign-in with a password."""

    user: str = Field(min_length=1, max_length=64)
    password: SecretStr
    days: float = Field(default=DEFAULT_TOKEN_DAYS, gt=0, le=3650)
    label: str = Field(default="login", max_length=200)


class UserIn(BaseModel):
    """A new user."""

    name: str
    role: Role
    password: SecretStr | None = None


class TokenIn(BaseModel):
    """A new token for a user."""

    days: float | None = Field(default=DEFAULT_TOKEN_DAYS, gt=0, le=3650)
    label: str = Field(default="", max_length=200)


def issued(token: IssuedToken, role: str) -> dict[str, Any]:
    """The answer that carries a token's value (the only one that ever does)."""
    info = token.info
    return {
        "token": token.value,
        "id": info.id,
        "user": info.user,
        "role": role,
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
    }


def build_user_router(catalog: Catalog, gate: Gate) -> APIRouter:
    """The routes, over ``catalog``'s users and tokens."""
    router = APIRouter(prefix="/api")
    admin = gate.role("admin")
    # Depends as defaults, not Annotated aliases: with postponed annotations FastAPI resolves
    # names in the module's globals, where a local alias does not exist.
    anyone = gate.role("viewer")

    @router.post("/login", status_code=201)
    def login(body: LoginIn) -> dict[str, Any]:
        # Sync: argon2 verification is CPU work that must not run on the event loop.
        user = catalog.check_password(body.user, body.password.get_secret_value())
        if user is None:
            raise UnauthorizedError(LOGIN_REFUSED)
        return issued(catalog.issue_token(user.name, label=body.label, days=body.days), user.role)

    @router.get("/me")
    def me(identity: Identity = anyone) -> dict[str, Any]:
        return asdict(identity)

    @router.get("/tokens")
    def tokens(identity: Identity = anyone) -> list[dict[str, Any]]:
        owner = None if identity.has_role("admin") else identity.user
        return [asdict(info) for info in catalog.list_tokens(owner)]

    @router.delete("/tokens/{token_id}")
    def revoke(token_id: int, identity: Identity = anyone) -> dict[str, Any]:
        owned = {info.id for info in catalog.list_tokens(identity.user)}
        if token_id not in owned and not identity.has_role("admin"):
            # The same answer as an unknown id: a user learns nothing of others' tokens.
            raise NotFoundError(f"no live token {token_id}", token=token_id)
        catalog.revoke_token(token_id)
        return {"revoked": token_id}

    @router.get("/users", dependencies=[admin])
    async def users() -> list[dict[str, Any]]:
        return [asdict(u) for u in await run_in_threadpool(catalog.list_users)]

    @router.post("/users", status_code=201, dependencies=[admin])
    def add_user(body: UserIn) -> dict[str, Any]:
        password = body.password.get_secret_value() if body.password else None
        user = catalog.add_user(body.name, body.role, password=password)
        return {**asdict(user), **issued(catalog.issue_token(user.name), user.role)}

    @router.delete("/users/{name}")
    def delete_user(name: str, identity: Identity = admin) -> dict[str, str]:
        if name == identity.user:
            raise ForbiddenError("an admin cannot delete the user they are signed in as")
        catalog.delete_user(name)
        return {"deleted": name}

    @router.post("/users/{name}/tokens", status_code=201, dependencies=[admin])
    def new_token(name: str, body: TokenIn) -> dict[str, Any]:
        user = catalog.get_user(name)
        return issued(catalog.issue_token(name, label=body.label, days=body.days), user.role)

    return router
