"""Access for the demo: fresh service secrets and three users, none of them a default.

Every ``workbench up`` generates the secrets the services share (Spark Connect's token, the
scrape token) unless they are configured, and gives the demo's users — ``admin``, ``analyst``
(role ``user``) and ``viewer`` — new random tokens, revoking the ones the last run printed.
The simulator's dataset is registered as ``public``, so the viewer has live tiles to watch,
and a first alert rule watches its temperatures.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pydantic import SecretStr

from workbench.catalog.records import Device
from workbench.catalog.store import Catalog
from workbench.catalog.users import Role
from workbench.core.errors import NotFoundError
from workbench.core.ids import ingestion_id
from workbench.core.settings import Settings
from workbench.ingest.service import DEFAULT_MQTT_SOURCE

__all__ = [
    "DEMO_TOKEN_DAYS",
    "DEMO_USERS",
    "DemoUser",
    "demo_alert_rules",
    "demo_devices",
    "demo_users",
    "with_admin_token",
    "with_service_secrets",
]

#: The demo's users and their roles, from most to least privileged.
DEMO_USERS: tuple[tuple[str, Role], ...] = (
    ("admin", "admin"),
    ("analyst", "user"),
    ("viewer", "viewer"),
)
#: Demo tokens live a week; the next ``workbench up`` replaces them anyway.
DEMO_TOKEN_DAYS = 7.0
#: The label of demo tokens, so the next run knows which to revoke.
DEMO_LABEL = "demo"


@dataclass(frozen=True)
class DemoUser:
    """A demo user and the token issued to them for this run."""

    name: str
    role: Role
    token: SecretStr


def with_service_secrets(settings: Settings) -> Settings:
    """``settings`` with a random Spark Connect token and scrape token where none is set."""
    auth = settings.auth
    generated = {
        key: SecretStr(secrets.token_urlsafe(32))
        for key in ("connect_token", "scrape_token")
        if getattr(auth, key) is None
    }
    return settings.model_copy(update={"auth": auth.model_copy(update=generated)})


def demo_users(catalog: Catalog) -> list[DemoUser]:
    """Make sure the demo users exist with their roles; issue each a new token, revoking the
    demo tokens of earlier runs."""
    issued = []
    for name, role in DEMO_USERS:
        try:
            if catalog.get_user(name).role != role:
                catalog.set_role(name, role)
        except NotFoundError:
            catalog.add_user(name, role)
        for info in catalog.list_tokens(name):
            if info.label == DEMO_LABEL and info.revoked_at is None:
                catalog.revoke_token(info.id)
        token = catalog.issue_token(name, label=DEMO_LABEL, days=DEMO_TOKEN_DAYS)
        issued.append(DemoUser(name, role, SecretStr(token.value)))
    return issued


def demo_devices(catalog: Catalog) -> list[Device]:
    """Label the simulator's readings (the default MQTT source's dataset) ``public``, so the
    demo's viewer sees the live tiles, unless an admin registered that dataset already."""
    iid = ingestion_id(DEFAULT_MQTT_SOURCE, "mqtt")
    if any(d.ingestion_id == iid for d in catalog.list_devices()):
        return []
    device = Device(ingestion_id=iid, name="demo temperature sensors", sensitivity="public")
    catalog.save_device(device)
    return [device]


#: The demo's alert rule: the simulator's afternoons reach it (its sensors peak near 35 °C).
DEMO_ALERT = ("temperature above 30 °C", "temperature", "gt", 30.0)


def demo_alert_rules(catalog: Catalog) -> list[int]:
    """Add the demo's alert rule, unless there are alert rules already; returns new ids."""
    if catalog.list_alert_rules(include_disabled=True):
        return []
    name, field, op, threshold = DEMO_ALERT
    return [catalog.add_alert_rule(name, field, op, threshold)]


def with_admin_token(settings: Settings, *, user: str = "service", days: float = 1.0) -> Settings:
    """``settings`` holding a fresh admin token (and the service secrets) for a supervisor
    that starts the services and then calls them: benchmarks, the test stacks.

    Migrates the catalog, makes ``user`` an admin if it is not one, issues the token.
    """
    settings = with_service_secrets(settings)
    catalog = Catalog(settings.catalog.url)
    try:
        try:
            if catalog.get_user(user).role != "admin":
                catalog.set_role(user, "admin")
        except NotFoundError:
            catalog.add_user(user, "admin")
        token = catalog.issue_token(user, label="service", days=days)
    finally:
        catalog.close()
    auth = settings.auth.model_copy(update={"token": SecretStr(token.value)})
    return settings.model_copy(update={"auth": auth})
