"""A catalog dashboard drawn as a grid of live tiles, for whoever holds the link's token.

The page knows nobody until its link carries a token (``?token=wbt_...``, as ``workbench up``
and ``workbench users token`` print it): the engine then answers each tile from its shared
cache for that token's clearance. Without a token, or with one the engine does not honour,
the page shows how to get one and nothing else. A tile above the viewer's clearance shows a
restricted card naming the label and the clearance it needs, never its data; the alerts below
the tiles are those the token may see.

The token comes from the link only: a dashboard never falls back on a token file or variable of
the server it runs on, which would show every visitor the server's own view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qs

import ipywidgets as widgets
from pydantic import SecretStr

from workbench.catalog.records import GRID_COLUMNS, Computation, Dashboard, Tile
from workbench.client.engine_client import EngineClient
from workbench.client.results import QueryAnswer
from workbench.core.errors import UnauthorizedError, WorkbenchError
from workbench.core.settings import Settings
from workbench.widgets.alerts_panel import AlertsPanel
from workbench.widgets.tile import TileWidget

__all__ = [
    "DEFAULT_DASHBOARD",
    "DashboardView",
    "Link",
    "build_dashboard",
    "dashboard_from_link",
    "parse_link",
]

#: The dashboard a link without ``?dashboard=`` opens (the demo's).
DEFAULT_DASHBOARD = "sensors"
#: Seconds between two refreshes of a tile (the engine's cache refreshes no faster than 15 s).
REFRESH_SECONDS = 15.0
#: Pixels per grid row of a tile's height.
_ROW_PIXELS = 110


@dataclass(frozen=True)
class Link:
    """What a dashboard link carries."""

    token: SecretStr | None
    dashboard: str


def parse_link(query_string: str) -> Link:
    """The token and dashboard name of a link's query string (Voila's ``QUERY_STRING``)."""
    values = parse_qs(query_string.lstrip("?"), keep_blank_values=False)
    token = (values.get("token") or [""])[0].strip()
    name = (values.get("dashboard") or [DEFAULT_DASHBOARD])[0].strip() or DEFAULT_DASHBOARD
    return Link(SecretStr(token) if token else None, name)


class DashboardView(widgets.VBox):
    """A dashboard's header (title, who is signed in), its tiles on a 12-column grid and, below
    them, its alerts.

    ``tiles`` are the live :class:`TileWidget` s and ``alerts`` the :class:`AlertsPanel`, for
    code and tests that look without a browser.
    """

    def __init__(
        self,
        dashboard: Dashboard,
        me: dict[str, Any],
        tiles: list[TileWidget],
        alerts: AlertsPanel | None = None,
    ):
        self.dashboard = dashboard
        self.tiles = tiles
        self.alerts = alerts
        header = widgets.HTML(
            f"<div class='workbench-dashboard-header'><h2 style='margin:4px 0'>"
            f"{escape(dashboard.title)}</h2>"
            + (f"<div>{escape(dashboard.description)}</div>" if dashboard.description else "")
            + f"<small class='workbench-signed-in'>signed in as {escape(str(me['user']))}"
            f" ({escape(str(me['role']))})</small></div>"
        )
        grid = widgets.GridBox(
            tiles,
            layout=widgets.Layout(
                grid_template_columns=f"repeat({GRID_COLUMNS}, minmax(0, 1fr))",
                grid_gap="12px",
                width="100%",
            ),
        )
        for widget, tile in zip(tiles, dashboard.tiles, strict=True):
            # grid_area, not grid_row and grid_column: the widget manager drops those two.
            widget.layout.grid_area = f"{tile.y + 1} / {tile.x + 1} / span {tile.h} / span {tile.w}"
            widget.layout.min_height = f"{tile.h * _ROW_PIXELS}px"
            widget.layout.border = "1px solid #e0e0e0"
            widget.layout.padding = "8px"
        parts: list[widgets.Widget] = [header, grid]
        if alerts is not None:
            alerts.layout.margin = "12px 0 0 0"
            parts.append(alerts)
        super().__init__(parts, layout=widgets.Layout(width="100%"))
        self.add_class("workbench-dashboard")

    def close(self) -> None:
        """Stop every tile's and the alerts' refresh and close the widgets."""
        for tile in self.tiles:
            tile.close()
        if self.alerts is not None:
            self.alerts.close()
        super().close()


def tile_view(tile: Tile) -> Computation:
    """How a tile is drawn, in the terms the tile widget and figures take."""
    return Computation(name=tile.title, sql="", tile_type=tile.viz, tile_config=dict(tile.config))


def build_dashboard(
    client: EngineClient,
    name: str,
    *,
    refresh_seconds: float = REFRESH_SECONDS,
    auto_refresh: bool = True,
) -> DashboardView:
    """Build the dashboard ``name`` and fill every tile and the alerts once (the tiles all
    fetched at once), then keep them fresh. Users and admins may acknowledge alerts there.

    Raises:
        UnauthorizedError: the client's token is missing, expired or revoked.
        NotFoundError: there is no dashboard of that name.
    """
    me = client.me()
    dashboard = client.dashboard(name)
    widgets_ = [
        TileWidget(_fetcher(client, tile), tile_view(tile), refresh_seconds=refresh_seconds)
        for tile in dashboard.tiles
    ]
    for widget in widgets_:
        widget.add_class(f"workbench-tile-{widget.computation.tile_type}")
    # The page is sent once the notebook ran: every tile holds its figure before that, and the
    # tiles wait for the engine together rather than one after another.
    pending = [widget.begin_refresh() for widget in widgets_]
    alerts = AlertsPanel(
        client.alerts,
        None if me["role"] == "viewer" else client.acknowledge_alert,
        refresh_seconds=refresh_seconds,
    )
    alerts.refresh_now()
    for widget, future in zip(widgets_, pending, strict=True):
        widget.finish_refresh(future)
        if auto_refresh:
            widget.start()
    if auto_refresh:
        alerts.start()
    return DashboardView(dashboard, me, widgets_, alerts)


def dashboard_from_link(query_string: str, settings: Settings) -> widgets.Widget:
    """The dashboard a link opens, or a card saying how to sign in.

    Args:
        query_string: the link's query (``token=...&dashboard=...``).
        settings: where the engine is and how often tiles refresh
            (``voila.refresh_seconds``); its own token is never used, only the link's.
    """
    link = parse_link(query_string)
    if link.token is None:
        return _card(
            "Sign in to see this dashboard",
            "Open it with the link your admin gave you: it ends in <code>?token=wbt_…</code>."
            " An admin makes one with <code>workbench users token NAME</code>.",
        )
    client = EngineClient(_with_token(settings, link.token))
    try:
        return build_dashboard(
            client, link.dashboard, refresh_seconds=settings.voila.refresh_seconds
        )
    except UnauthorizedError:
        client.close()
        return _card(
            "This link's token is not valid",
            "It is expired, revoked or mistyped. Ask an admin for a new link"
            " (<code>workbench users token NAME</code>).",
        )
    except WorkbenchError as err:
        client.close()
        return _card(f"Cannot open dashboard {link.dashboard!r}", escape(err.message))


def _with_token(settings: Settings, token: SecretStr) -> Settings:
    """``settings`` speaking with the link's token and no token file to fall back on."""
    auth = settings.auth.model_copy(
        update={"token": token, "token_file": "/nonexistent/workbench-token"}
    )
    return settings.model_copy(update={"auth": auth})


def _fetcher(client: EngineClient, tile: Tile) -> Callable[[], QueryAnswer]:
    assert tile.id is not None, "a stored tile has an id"
    tile_id = tile.id
    return lambda: client.tile_data(tile_id)


def _card(title: str, body_html: str) -> widgets.HTML:
    return widgets.HTML(
        "<div class='workbench-sign-in' style='max-width:640px;margin:48px auto;padding:24px;"
        "border:1px solid #bdbdbd;border-radius:8px'>"
        f"<h2 style='margin-top:0'>{escape(title)}</h2><p>{body_html}</p></div>"
    )
