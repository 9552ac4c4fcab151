"""The alerts panel of a dashboard: what fires now, since when, and who acknowledged it.

It lists the alerts the engine lets the signed-in token see (firing first), says how many
others are above its clearance, and offers an *Acknowledge* button on each unacknowledged
firing alert to users and admins (viewers only look). It refreshes on the kernel's event loop,
the engine read in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any

import ipywidgets as widgets

from workbench.core.errors import WorkbenchError
from workbench.widgets.tile import repeat_on_loop

__all__ = ["AlertsPanel"]

_STATUS_COLOURS = {"firing": "#c62828", "resolved": "#2e7d32"}
_OPS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


class AlertsPanel(widgets.VBox):
    """The alerts ``fetch`` answers (``EngineClient.alerts``'s form), with ``acknowledge`` for
    roles that may.

    ``alerts``, ``hidden`` and ``message`` describe the last refresh, for code and tests that
    look without a browser.
    """

    def __init__(
        self,
        fetch: Callable[[], dict[str, Any]],
        acknowledge: Callable[[int], dict[str, Any]] | None,
        *,
        refresh_seconds: float,
    ) -> None:
        self._fetch = fetch
        self._acknowledge = acknowledge
        self.refresh_seconds = refresh_seconds
        self.alerts: list[dict[str, Any]] = []
        self.hidden = 0
        self.message = ""
        self._task: asyncio.Task[None] | None = None
        self._title = widgets.HTML("<b>Alerts</b>")
        self._rows = widgets.VBox()
        super().__init__([self._title, self._rows])
        self.add_class("workbench-alerts")
        self.layout.border = "1px solid #e0e0e0"
        self.layout.padding = "8px"

    def refresh_now(self) -> None:
        """Fetch and draw (blocks the caller until the engine answers)."""
        self._show(self._read())

    def start(self) -> asyncio.Task[None] | None:
        """Refresh every ``refresh_seconds`` on the running event loop; no-op without one."""
        if self._task is None or self._task.done():
            self._task = repeat_on_loop(self.refresh_seconds, self.refresh, "alerts panel")
        return self._task

    async def refresh(self) -> None:
        """Fetch in a worker thread and draw, without blocking the event loop."""
        self._show(await asyncio.to_thread(self._read))

    def close(self) -> None:
        """Stop refreshing and close the widgets."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        super().close()

    def _read(self) -> dict[str, Any] | str:
        try:
            return self._fetch()
        except WorkbenchError as err:
            return f"alerts unavailable: {err.message}"

    def _show(self, answer: dict[str, Any] | str) -> None:
        if isinstance(answer, str):
            self.message = answer
            self._rows.children = [widgets.HTML(f"<span style='color:#b71c1c'>{escape(answer)}")]
            return
        self.alerts = list(answer.get("alerts") or [])
        self.hidden = int(answer.get("hidden") or 0)
        firing = sum(1 for a in self.alerts if a["status"] == "firing")
        self.message = f"{firing} firing, {len(self.alerts) - firing} resolved"
        if self.hidden:
            self.message += f"; {self.hidden} more above your clearance ({answer.get('clearance')})"
        self._title.value = f"<b>Alerts</b> <small>{escape(self.message)}</small>"
        rows: list[widgets.Widget] = [self._row(a) for a in self.alerts]
        if not rows:
            rows = [widgets.HTML("<span style='color:#616161'>No alerts.</span>")]
        self._rows.children = rows

    def _row(self, alert: dict[str, Any]) -> widgets.Widget:
        colour = _STATUS_COLOURS.get(alert["status"], "#616161")
        since = alert["fired_at"] if alert["status"] == "firing" else alert["resolved_at"]
        value = "" if alert["value"] is None else f"{alert['value']:g}"
        acked = (
            f"acknowledged by {escape(alert['acknowledged_by'])} at "
            f"{_clock(alert['acknowledged_at'])}"
            if alert["acknowledged_by"]
            else "not acknowledged"
        )
        html = widgets.HTML(
            f"<span class='workbench-alert-{escape(alert['status'])}' style='background:"
            f"{colour};color:white;border-radius:4px;padding:1px 6px'>"
            f"{escape(alert['status'])}</span> <b>{escape(str(alert['rule']))}</b> · "
            f"{escape(alert['ingestion_id'])} / {escape(alert['sensor_id'])} · value {value}"
            f" · since {_clock(since)} · <small>{acked}</small>"
        )
        if self._acknowledge is None or alert["status"] != "firing" or alert["acknowledged_by"]:
            return html
        button = widgets.Button(description="Acknowledge", button_style="warning")
        button.layout.width = "auto"
        button.on_click(lambda _b, alert_id=int(alert["id"]): self._ack(alert_id))
        return widgets.HBox([html, button], layout={"align_items": "center", "grid_gap": "8px"})

    def _ack(self, alert_id: int) -> None:
        assert self._acknowledge is not None
        try:
            self._acknowledge(alert_id)
        except WorkbenchError as err:
            self._show(f"could not acknowledge alert {alert_id}: {err.message}")
            return
        self.refresh_now()


def _clock(iso: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` UTC (empty for none)."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
