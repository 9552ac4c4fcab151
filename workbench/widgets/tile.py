"""A dashboard tile: one computation drawn with plotly, refreshed on the kernel's event loop.

The tile draws what its ``fetch`` answers (the engine's query service, through the user's
token); the fetch runs in a worker thread so the kernel keeps answering widget messages while
the engine works; at most one refresh of a tile is in flight at any time (a refresh that finds
the previous one still running is skipped, even after the previous one timed out).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any, Literal

import ipywidgets as widgets
import pandas as pd

from workbench.analytics.tiles import EMPTY_MESSAGE, build_tile_figure, data_age, format_age
from workbench.catalog.records import Computation
from workbench.client.results import QueryAnswer
from workbench.core.errors import SensitivityDenied, WorkbenchError

__all__ = ["PLOTLY_MIME", "Fetch", "TileWidget", "build_tile", "repeat_on_loop"]

logger = logging.getLogger(__name__)

Fetch = Callable[[], QueryAnswer]
"""Runs the tile's computation (on the engine) and answers its rows; raises a
:class:`WorkbenchError` the tile shows (refused, denied, engine away...)."""

PLOTLY_MIME = "application/vnd.plotly.v1+json"
"""Rendered by the jupyterlab-plotly extension in JupyterLab and Voila; no plotly.js download."""

TileState = Literal["loading", "ok", "empty", "error", "restricted"]


@dataclass(frozen=True)
class _Result:
    frame: pd.DataFrame | None = None
    sensitivity: str | None = None
    error: str | None = None
    restricted: bool = False
    """The result is above the caller's clearance: ``error`` says which device and label."""
    computed_at: str | None = None
    """When the engine computed the result (a cached tile's ``cached_at``)."""


class TileWidget(widgets.VBox):
    """One tile: title, freshness badge, last refresh time, message line and plot.

    Build it with :func:`build_tile`. ``state``, ``message``, ``freshness`` and ``frame``
    describe the last refresh, for code and tests that look at a tile without a browser.
    """

    def __init__(
        self,
        fetch: Fetch,
        computation: Computation,
        *,
        refresh_seconds: float,
        query_timeout: float = 60.0,
    ) -> None:
        self.computation = computation
        self.refresh_seconds = refresh_seconds
        self.query_timeout = query_timeout
        self.state: TileState = "loading"
        self.message = ""
        self.freshness = "loading…"
        self.frame: pd.DataFrame | None = None
        self.refreshed_at: datetime | None = None
        self.sensitivity: str | None = None
        self._fetch_answer = fetch
        # One worker per tile: its queries never queue behind another tile's.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tile")
        self._in_flight: Future[_Result] | None = None
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

        description = f" <small>{escape(computation.description)}</small>"
        self._title = widgets.HTML(
            f"<h3 style='margin:0'>{escape(computation.name)}</h3>"
            + (description if computation.description else "")
        )
        self._badge = widgets.HTML(_badge_html(self.freshness, "#9e9e9e"))
        self._refreshed = widgets.HTML("")
        self._button = widgets.Button(description="Refresh", icon="refresh", tooltip="Refresh now")
        self._button.layout.width = "110px"
        self._button.on_click(lambda _: self._schedule_refresh())
        self._message = widgets.HTML("")
        self._plot = widgets.Output(layout={"min_height": "360px"})
        spacer = widgets.Box(layout={"flex": "1 1 auto"})
        header = widgets.HBox(
            [self._title, self._badge, spacer, self._button],
            layout={"align_items": "center", "grid_gap": "8px", "flex_flow": "row wrap"},
        )
        super().__init__([header, self._refreshed, self._message, self._plot])
        self.add_class("workbench-tile")

    # -- refreshing ---------------------------------------------------------------------------

    def refresh_now(self) -> TileState:
        """Refresh synchronously (blocks the caller until the query returns or times out)."""
        return self.finish_refresh(self.begin_refresh())

    def begin_refresh(self) -> Future[_Result] | None:
        """Start a refresh in the tile's worker (None: one is in flight); several tiles
        started together fetch at once. :meth:`finish_refresh` draws it."""
        return self._submit()

    def finish_refresh(self, future: Future[_Result] | None) -> TileState:
        """Wait for a refresh :meth:`begin_refresh` started and draw it (on the caller's
        thread: widgets are only touched there)."""
        if future is None:
            return self.state
        try:
            result = future.result(timeout=self.query_timeout)
        except TimeoutError:
            result = _Result(error=self._timeout_message())
        self._show(result)
        return self.state

    async def refresh(self) -> TileState:
        """Refresh without blocking the event loop; skipped while a refresh is in flight."""
        future = self._submit()
        if future is None:
            return self.state
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self.query_timeout)
        except TimeoutError:
            result = _Result(error=self._timeout_message())
        self._show(result)
        return self.state

    def start(self) -> asyncio.Task[None] | None:
        """Start auto-refresh on the running event loop (the kernel's); no-op without one."""
        if self._task is None or self._task.done():
            what = f"tile={self.computation.name}"
            self._task = repeat_on_loop(self.refresh_seconds, self.refresh, what)
        return self._task

    def stop(self) -> None:
        """Stop auto-refresh (a query already running finishes in the background)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def close(self) -> None:
        """Stop refreshing and close the widget and its children."""
        self.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for child in (self._title, self._badge, self._refreshed, self._button, self._message):
            child.close()
        self._plot.close()
        super().close()

    def _schedule_refresh(self) -> None:
        try:
            asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:
            self.refresh_now()

    def _submit(self) -> Future[_Result] | None:
        with self._lock:
            if self._in_flight is not None and not self._in_flight.done():
                logger.debug("tile=%s refresh skipped: one is in flight", self.computation.name)
                return None
            self._in_flight = self._executor.submit(self._fetch)
            return self._in_flight

    def _timeout_message(self) -> str:
        return (
            f"the engine did not answer within {self.query_timeout:g} s; the query keeps running"
            " and the next refresh waits for it"
        )

    def _fetch(self) -> _Result:
        """Runs in the worker thread: fetch, never touch widgets."""
        name = self.computation.name
        try:
            answer = self._fetch_answer()
        except SensitivityDenied as err:
            return _Result(error=err.message, restricted=True)
        except WorkbenchError as err:
            return _Result(error=err.message)
        except Exception as err:  # noqa: BLE001 - any failure is shown on the tile, not raised
            logger.warning("tile=%s refresh error=%r", name, err)
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return _Result(error=f"{type(err).__name__}: {first}")
        computed = answer.extras.get("cached_at")
        return _Result(
            frame=answer.to_pandas(),
            sensitivity=answer.sensitivity,
            computed_at=str(computed) if computed else None,
        )

    # -- drawing ------------------------------------------------------------------------------

    def _set_badge(self, text: str, color: str) -> None:
        self.freshness = text
        self._badge.value = _badge_html(text, color)

    def _show(self, result: _Result) -> None:
        now = datetime.now(UTC)
        self.refreshed_at = now
        computed = ""
        if result.computed_at:
            stamp = datetime.fromisoformat(result.computed_at)
            computed = f" · computed {stamp:%H:%M:%S}"
        self._refreshed.value = (
            f"<small class='workbench-refreshed' style='color:#757575'>"
            f"refreshed {now:%H:%M:%S} UTC{computed}</small>"
        )
        if result.restricted:
            assert result.error is not None
            self.state, self.message = "restricted", result.error
            self.frame, self.sensitivity = None, None
            self._message.value = _restricted_html(result.error)
            self._set_badge("restricted", "#6a1b9a")
            self._plot.outputs = ()
            return
        if result.error is not None:
            self.state, self.message = "error", result.error
            self._message.value = _message_html(result.error, "#b71c1c")
            self._set_badge("no data", "#9e9e9e")
            return
        frame = result.frame
        assert frame is not None
        self.frame = frame
        self.sensitivity = result.sensitivity
        if frame.empty:
            self.state, self.message = "empty", EMPTY_MESSAGE
            self._message.value = _message_html(EMPTY_MESSAGE, "#5d4037")
            self._set_badge("no data", "#9e9e9e")
            self._plot.outputs = ()
            return
        try:
            figure = build_tile_figure(frame, self.computation)
        except WorkbenchError as err:
            self.state, self.message = "error", err.message
            self._message.value = _message_html(err.message, "#b71c1c")
            return
        # The tile's header already names the computation.
        figure.update_layout(title_text="", margin={"t": 16})
        self.state, self.message = "ok", ""
        self._message.value = ""
        age = data_age(frame, self.computation, now=now, timezone="UTC")
        if age is None and result.computed_at:
            # No time column (a stat, a count): how old the result is says how fresh it is.
            age = max(now - datetime.fromisoformat(result.computed_at), timedelta(0))
        self._set_badge(*_freshness(age, self.refresh_seconds))
        self._plot.outputs = (_figure_output(figure, self.computation.name, len(frame)),)


def repeat_on_loop(
    seconds: float, refresh: Callable[[], Awaitable[object]], what: str
) -> asyncio.Task[None] | None:
    """Run ``refresh`` every ``seconds`` on the running event loop (the kernel's); None
    without one. A failing refresh is logged and the next one comes all the same."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        logger.debug("%s no running event loop, auto-refresh off", what)
        return None

    async def run() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await refresh()
            except Exception:  # the loop must outlive any one bad refresh; the widget shows it
                logger.exception("%s refresh failed", what)

    return loop.create_task(run())


def build_tile(
    fetch: Fetch,
    computation: Computation,
    *,
    refresh_seconds: float,
    query_timeout: float = 60.0,
    auto_refresh: bool = True,
) -> TileWidget:
    """Build a tile and fill it once, then keep it fresh.

    The first refresh is synchronous on purpose: in Voila the page is sent once the notebook has
    run, so a tile that already holds its figure paints complete at once (widget updates sent
    before the browser connects could be lost). Later refreshes run every ``refresh_seconds``
    as an asyncio task on the kernel's loop.

    Args:
        fetch: runs the computation on the engine; called on every refresh.
        computation: what to run and how to draw it.
        refresh_seconds: seconds between the end of one refresh and the start of the next.
        query_timeout: seconds a refresh waits for the engine before reporting it.
        auto_refresh: start the refresh loop (needs a running event loop, as in a kernel).

    Returns:
        The tile widget.
    """
    tile = TileWidget(
        fetch, computation, refresh_seconds=refresh_seconds, query_timeout=query_timeout
    )
    tile.refresh_now()
    if auto_refresh:
        tile.start()
    return tile


def _figure_output(figure: Any, name: str, rows: int) -> dict[str, Any]:
    # Set as Output.outputs rather than displayed inside `with output:`, which captures by the
    # parent message id and so misses displays made from background tasks.
    return {
        "output_type": "display_data",
        "data": {
            PLOTLY_MIME: json.loads(figure.to_json()),
            "text/plain": f"<{name}: {rows} rows>",
        },
        "metadata": {},
    }


def _freshness(age: timedelta | None, refresh_seconds: float) -> tuple[str, str]:
    """Badge text and color: green within three refreshes (at least 5 min, as gold windows are
    minutes long), amber up to 30 min, red after."""
    if age is None:
        return "age unknown", "#9e9e9e"
    seconds = age.total_seconds()
    if seconds <= max(3 * refresh_seconds, 5 * 60):
        color = "#2e7d32"
    elif seconds <= 30 * 60:
        color = "#ef6c00"
    else:
        color = "#b71c1c"
    return f"data {format_age(age)} old", color


def _badge_html(text: str, color: str) -> str:
    return (
        f"<span class='workbench-freshness' style='background:{color};color:white;"
        f"padding:2px 8px;border-radius:10px;font-size:90%'>{escape(text)}</span>"
    )


#: A padlock drawn inline: an emoji needs a font the page's browser may not have.
_PADLOCK = (
    "<svg width='14' height='14' viewBox='0 0 24 24' fill='currentColor' aria-hidden='true' "
    "style='vertical-align:-2px'><path d='M12 2a5 5 0 0 0-5 5v3H6a2 2 0 0 0-2 2v8a2 2 0 0 0 "
    "2 2h12a2 2 0 0 0 2-2v-8a2 2 0 0 0-2-2h-1V7a5 5 0 0 0-5-5zm-3 8V7a3 3 0 0 1 6 0v3H9z'/>"
    "</svg>"
)


def _restricted_html(reason: str) -> str:
    """The card shown instead of a result above the viewer's clearance: nothing of the data,
    only why and what to ask for."""
    return (
        "<div class='workbench-restricted' style='border:1px dashed #6a1b9a;border-radius:6px;"
        "padding:16px;color:#4a148c;background:#f3e5f5'>"
        f"<b>{_PADLOCK} Restricted</b><br>"
        f"{escape(reason)}<br><small>Ask an admin for an account with that clearance.</small>"
        "</div>"
    )


def _message_html(text: str, color: str) -> str:
    return f"<div class='workbench-tile-message' style='color:{color}'>{escape(text)}</div>"
