"""The schema browser widget: datasets → fields → evolution, and the unmapped-keys
inbox with a "Map to…" button per raw key.

Everything it shows comes from :class:`~workbench.catalog.store.Catalog` calls in the kernel;
their errors land in the widget's message line instead of raising into the notebook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any, TypeVar

import ipywidgets as widgets

from workbench.catalog.records import DatasetInfo, FieldInfo, SchemaEvent
from workbench.catalog.sketch import EXACT_LIMIT
from workbench.catalog.store import Catalog
from workbench.catalog.unmapped import UnmappedKey
from workbench.core.errors import WorkbenchError

__all__ = ["SchemaBrowserWidget", "UnmappedRow", "build_schema_browser"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Evolution events shown per dataset (the latest ones).
EVOLUTION_ROWS = 200


class UnmappedRow(widgets.HBox):
    """One inbox line: the raw key with its facts, the canonical key to map it to (prefilled
    with the suggestion), the scope, and the "Map to…" button."""

    def __init__(self, key: UnmappedKey, on_map: Callable[[UnmappedRow], None]) -> None:
        self.key = key
        self.info = widgets.HTML(_unmapped_html(key), layout=widgets.Layout(width="55%"))
        self.canonical = widgets.Text(value=key.suggestion, layout=widgets.Layout(width="20%"))
        self.scope = widgets.Dropdown(
            options=[("this dataset", key.ingestion_id), ("all datasets", "")],
            value=key.ingestion_id,
            layout=widgets.Layout(width="14%"),
        )
        self.button = widgets.Button(description="Map to…", icon="link")
        self.button.on_click(lambda _: on_map(self))
        super().__init__([self.info, self.canonical, self.scope, self.button])


class SchemaBrowserWidget(widgets.VBox):
    """Two tabs: *Datasets* (a dataset list, its fields table and its evolution timeline) and
    *Unmapped keys* (one :class:`UnmappedRow` per raw key no rule maps).

    Build it with :func:`build_schema_browser`. For code and tests that look at it without a
    browser: ``message`` holds the last error (empty after a success), ``dataset``, ``fields``
    and ``events`` what the selected dataset shows, ``unmapped_rows`` the inbox lines.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.message = ""
        self.dataset: DatasetInfo | None = None
        self.fields: list[FieldInfo] = []
        self.events: list[SchemaEvent] = []
        self.unmapped_rows: list[UnmappedRow] = []
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML()
        self.datasets = widgets.Select(
            options=[], rows=6, description="Datasets", layout=widgets.Layout(width="95%")
        )
        self.summary_html = widgets.HTML()
        self.fields_html = widgets.HTML()
        self.evolution_html = widgets.HTML()
        self.inbox = widgets.VBox()
        self.tabs = widgets.Tab(
            children=[
                widgets.VBox(
                    [self.datasets, self.summary_html, self.fields_html, self.evolution_html]
                ),
                self.inbox,
            ]
        )
        self.tabs.set_title(0, "Datasets")
        self.tabs.set_title(1, "Unmapped keys")
        super().__init__([widgets.HBox([self.refresh_button]), self.status, self.tabs])
        self.refresh_button.on_click(lambda _: self.refresh())
        self.datasets.observe(self._on_dataset, names="value")

    def refresh(self) -> None:
        """Re-read datasets and the inbox; keep the selected dataset when it still exists."""
        self._show_error("")
        datasets = self._attempt("cannot list datasets", self._catalog.list_datasets)
        if datasets is not None:
            selected = self.datasets.value
            self.datasets.options = [(_dataset_label(d), d.ingestion_id) for d in datasets]
            ids = [d.ingestion_id for d in datasets]
            if selected in ids:
                self._show_dataset(selected)
            elif ids:
                self.datasets.value = ids[0]  # observed: shows it
            else:
                self._show_dataset(None)
        self._refresh_inbox()

    def _on_dataset(self, change: dict[str, Any]) -> None:
        self._show_dataset(change["new"])

    def _show_dataset(self, ingestion_id: str | None) -> None:
        if ingestion_id is None:
            self.dataset, self.fields, self.events = None, [], []
            self.summary_html.value = ""
            self.fields_html.value = "<i>no dataset has been ingested yet</i>"
            self.evolution_html.value = ""
            return
        loaded = self._attempt(
            "cannot read the dataset",
            lambda: (
                self._catalog.get_dataset(ingestion_id),
                self._catalog.schema_evolution(ingestion_id, limit=EVOLUTION_ROWS),
            ),
        )
        if loaded is None:
            return
        self.dataset, self.events = loaded
        self.fields = self.dataset.fields
        self.summary_html.value = _summary_html(self.dataset)
        self.fields_html.value = _fields_html(self.fields)
        self.evolution_html.value = _evolution_html(self.events)

    def _refresh_inbox(self) -> None:
        keys = self._attempt("cannot list unmapped keys", self._catalog.unmapped_keys)
        if keys is None:
            return
        self.unmapped_rows = [UnmappedRow(k, self._map) for k in keys]
        header = widgets.HTML(
            f"<b>{len(keys)} raw keys no rule maps</b>"
            if keys
            else "<i>every raw key is mapped by a normalization rule</i>"
        )
        self.inbox.children = [header, *self.unmapped_rows]
        self.tabs.set_title(1, f"Unmapped keys ({len(keys)})")

    def _map(self, row: UnmappedRow) -> None:
        """Add the normalization rule a row asks for, then refresh the inbox."""
        self._show_error("")
        canonical = row.canonical.value.strip()
        added = self._attempt(
            f"cannot map {row.key.raw_key!r}",
            lambda: self._catalog.add_rule(
                row.key.raw_key, canonical, ingestion_id=row.scope.value or None
            ),
        )
        if added is not None:
            logger.info(
                "rule added from the inbox raw_key=%s canonical_key=%s scope=%s",
                added.raw_key,
                added.canonical_key,
                added.ingestion_id or "global",
            )
            self._refresh_inbox()

    def _attempt(self, what: str, action: Callable[[], T]) -> T | None:
        """``action()``, or None after showing its error: a widget callback must not raise."""
        try:
            return action()
        except WorkbenchError as err:
            logger.warning("schema browser: %s: %s", what, err.message)
            self._show_error(f"{what}: {err.message}")
        except Exception as err:
            logger.exception("schema browser: %s", what)
            self._show_error(f"{what}: {type(err).__name__}: {err}")
        return None

    def _show_error(self, text: str) -> None:
        self.message = text
        self.status.value = f'<span style="color:#b00020">{escape(text)}</span>' if text else ""


def build_schema_browser(catalog: Catalog) -> SchemaBrowserWidget:
    """A schema browser over ``catalog``, already showing the first dataset and the inbox."""
    widget = SchemaBrowserWidget(catalog)
    widget.refresh()
    return widget


def _dataset_label(d: DatasetInfo) -> str:
    return (
        f"{d.ingestion_id} — {d.record_count:,} records, {d.distinct_sensors:,} sensors, "
        f"{len(d.fields)} fields, schema v{d.schema_version}"
    )


def _summary_html(d: DatasetInfo) -> str:
    # Exact up to EXACT_LIMIT sensors, an estimate (about 1 %) beyond: say which.
    sensors = f"{d.distinct_sensors:,}" + ("" if d.distinct_sensors <= EXACT_LIMIT else " (est.)")
    facts = [
        f"{d.record_count:,} records",
        f"{sensors} distinct sensors",
        f"{d.bytes:,} bytes",
        f"schema v{d.schema_version}",
        f"{_when(d.first_seen)} → {_when(d.last_seen)}",
    ]
    return f"<b>{escape(d.ingestion_id)}</b>: " + ", ".join(escape(f) for f in facts)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fields_html(fields: list[FieldInfo]) -> str:
    rows = [
        [
            f.path + (" (not seen)" if f.stale else ""),
            f.type,
            "yes" if f.nullable else "no",
            f"{f.count:,}",
            ", ".join(map(str, f.samples)),
            "" if f.min is None else f.min,
            "" if f.max is None else f.max,
            _when(f.last_seen),
        ]
        for f in fields
    ]
    headers = ["field", "type", "nullable", "count", "samples", "min", "max", "last seen"]
    return "<b>Fields</b>" + _table(headers, rows)


def _evolution_html(events: list[SchemaEvent]) -> str:
    if not events:
        return "<b>Evolution</b><br><i>no schema changes logged</i>"
    rows = [
        [
            _when(e.at),
            f"v{e.schema_version}",
            e.kind,
            e.path,
            f"{e.old_type or ''} → {e.new_type or ''}".strip(" →"),
            "" if e.sample is None else e.sample,
        ]
        for e in reversed(events)  # newest first
    ]
    headers = ["at", "version", "change", "field", "type", "sample"]
    return "<b>Evolution</b>" + _table(headers, rows)


def _unmapped_html(key: UnmappedKey) -> str:
    examples = ", ".join(escape(str(e)) for e in key.examples)
    return (
        f"<b>{escape(key.raw_key)}</b> in {escape(key.ingestion_id)}: {key.count:,} records, "
        f"{_when(key.first_seen)} → {_when(key.last_seen)}; e.g. {examples}"
    )
