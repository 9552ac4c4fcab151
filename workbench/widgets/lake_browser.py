"""A lake browser widget: layer → partitions → files → preview of the first rows.

Every action runs :class:`~workbench.lake.browser.LakeBrowser` calls in the kernel and shows
their errors in the widget's message line instead of raising into the notebook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from html import escape
from typing import Any, TypeVar

import ipywidgets as widgets
import pyarrow as pa

from workbench.analytics.tiles import format_age
from workbench.core.errors import WorkbenchError
from workbench.core.settings import Settings
from workbench.lake.browser import LAYERS, LakeBrowser, Layer, LayerSummary, Partition

__all__ = ["LakeBrowserWidget", "build_lake_browser", "format_bytes"]

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 20

T = TypeVar("T")


def format_bytes(size: int) -> str:
    """A short human size: ``"812 B"``, ``"4.2 kB"``, ``"3.1 MB"``, ``"1.0 GB"``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class LakeBrowserWidget(widgets.VBox):
    """Layer dropdown, refresh button, layer summary, partitions, files and a preview.

    Build it with :func:`build_lake_browser`. ``message`` holds the last error (empty when the
    last action succeeded) and ``preview_table`` the last previewed rows, for code and tests
    that look at the widget without a browser.
    """

    def __init__(
        self, browser_factory: Callable[[], LakeBrowser], rows: int = PREVIEW_ROWS
    ) -> None:
        self._factory = browser_factory
        self._browser: LakeBrowser | None = None
        self._rows = rows
        self._quiet = False
        self.preview_table: pa.Table | None = None
        self.message = ""
        self.layer = widgets.Dropdown(options=list(LAYERS), value="bronze", description="Layer")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML()
        self.summary = widgets.HTML()
        self.partitions = widgets.Select(options=[], rows=8, description="Partitions")
        self.files = widgets.Select(options=[], rows=8, description="Files")
        self.preview = widgets.HTML()
        for select in (self.partitions, self.files):
            select.layout = widgets.Layout(width="95%")
        super().__init__(
            [
                widgets.HBox([self.layer, self.refresh_button]),
                self.status,
                self.summary,
                self.partitions,
                self.files,
                self.preview,
            ]
        )
        self.layer.observe(lambda _: self.refresh(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.partitions.observe(self._on_partition, names="value")
        self.files.observe(self._on_file, names="value")

    def refresh(self) -> None:
        """List the layers and the chosen layer's partitions; select the newest partition."""
        self._show_error("")
        layer = self.layer.value
        listed = self._attempt("cannot list the lake", lambda: self._list(layer))
        if listed is None:
            self.summary.value = ""
            self._set_options(self.partitions, [])
            self._set_options(self.files, [])
            return
        layers, partitions = listed
        self.summary.value = _summary_html(layers)
        options = [
            (
                f"{p.path.split('/', 1)[-1]} — {p.files} files, {format_bytes(p.bytes)}, "
                f"newest {format_age(p.newest_age)} ago",
                p.path,
            )
            for p in partitions
        ]
        self._set_options(self.partitions, options)
        self._set_options(self.files, [])
        self.preview.value = ""
        self.preview_table = None
        if partitions:
            newest = max(partitions, key=lambda p: p.newest_modified)
            self.partitions.value = newest.path
        else:
            self.preview.value = f"<i>no data files in {escape(layer)}</i>"

    def _on_partition(self, change: dict[str, Any]) -> None:
        if self._quiet or change["new"] is None:
            return
        partition = change["new"]
        files = self._attempt(
            "cannot list the partition's files",
            lambda: self._get_browser().files(self.layer.value, partition=partition),
        )
        if files is None:
            return
        options = [
            (f"{f.name} — {format_bytes(f.size)}, {format_age(f.age)} ago", f.path) for f in files
        ]
        self._set_options(self.files, options)
        if files:
            self.files.value = max(files, key=lambda f: f.modified).path

    def _on_file(self, change: dict[str, Any]) -> None:
        if self._quiet or change["new"] is None:
            return
        self._show_error("")
        path = change["new"]
        table = self._attempt(
            "cannot preview the file", lambda: self._get_browser().preview(path, rows=self._rows)
        )
        if table is None:
            self.preview.value = ""
            self.preview_table = None
            return
        self.preview_table = table
        heading = f"<b>{escape(change['new'])}</b> — first {table.num_rows} rows"
        self.preview.value = heading + table.to_pandas().to_html(index=False, max_cols=20)

    def _get_browser(self) -> LakeBrowser:
        if self._browser is None:
            self._browser = self._factory()
        return self._browser

    def _set_options(self, select: widgets.Select, options: list[tuple[str, str]]) -> None:
        self._quiet = True
        try:
            select.options = options
            select.value = None
        finally:
            self._quiet = False

    def _list(self, layer: Layer) -> tuple[list[LayerSummary], list[Partition]]:
        browser = self._get_browser()
        return browser.layers(), browser.partitions(layer)

    def _attempt(self, what: str, action: Callable[[], T]) -> T | None:
        """``action()``, or None after showing its error: a widget callback must not raise."""
        try:
            return action()
        except WorkbenchError as err:
            logger.warning("lake browser: %s: %s", what, err.message)
            self._show_error(f"{what}: {err.message}")
        except Exception as err:
            logger.exception("lake browser: %s", what)
            self._show_error(f"{what}: {type(err).__name__}: {err}")
        return None

    def _show_error(self, text: str) -> None:
        self.message = text
        self.status.value = f'<span style="color:#b00020">{escape(text)}</span>' if text else ""


def _summary_html(layers: list[LayerSummary]) -> str:
    cells = "".join(
        f"<td><b>{s.layer}</b>: {s.files} files, {format_bytes(s.bytes)}</td>" for s in layers
    )
    return f"<table><tr>{cells}</tr></table>"


def build_lake_browser(settings: Settings, *, rows: int = PREVIEW_ROWS) -> LakeBrowserWidget:
    """A lake browser over ``settings.lake.root``, already showing the newest bronze file.

    Args:
        settings: the lake root and, for an object store, its credentials.
        rows: how many rows a preview shows.
    """
    widget = LakeBrowserWidget(lambda: LakeBrowser(settings), rows=rows)
    widget.refresh()
    return widget
