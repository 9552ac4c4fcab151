"""The rule editor widget: draft a value rule, preview it live, save it.

The preview runs :func:`workbench.enrichment.preview.preview_rules` (the stream's own transform)
on the newest bronze rows with the stored rules plus the draft, and shows what each rule did,
the rows before and after, and the raw keys no normalization rule maps. Errors (a draft that is
not JSON, a rule that cannot run, no bronze rows yet) land in the message line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as widgets
from pyspark.sql import SparkSession

from workbench.catalog.records import VALUE_RULE_KINDS, ValueRule
from workbench.catalog.store import Catalog
from workbench.core.errors import ConfigError, WorkbenchError
from workbench.core.settings import Settings
from workbench.enrichment.preview import RulePreview, preview_rules
from workbench.enrichment.value_rules import SparkRegexCheck, check_rule

__all__ = ["RuleEditorWidget", "build_rule_editor"]

logger = logging.getLogger(__name__)

DRAFT_ID = -1
"""Id of the draft rule in a preview (stored rules have positive ids)."""

EXAMPLES = {
    "filter": {"op": "gt", "value": 0},
    "convert": {"op": "mul", "value": 1.8, "target": "temperature_f"},
    "validate": {"check": "range", "min": -40, "max": 60, "on_fail": "flag"},
    "aggregate": {"function": "avg", "window": "5 minutes", "group_by": ["sensor_id"]},
}


class RuleEditorWidget(widgets.VBox):
    """Draft form, Preview and Save buttons, outcome and before/after tables.

    ``message`` holds the last error (empty when the last action succeeded) and
    ``last_preview`` the last :class:`RulePreview`, for code and tests.
    """

    def __init__(
        self,
        catalog: Catalog,
        spark_factory: Callable[[], SparkSession],
        settings: Settings,
    ) -> None:
        self.catalog = catalog
        self.spark_factory = spark_factory
        self.settings = settings
        self.last_preview: RulePreview | None = None
        self._regex: SparkRegexCheck | None = None
        self.name = widgets.Text(description="Name", value="my_rule")
        self.kind = widgets.Dropdown(description="Kind", options=list(VALUE_RULE_KINDS))
        self.field = widgets.Text(description="Field", value="temperature")
        self.dataset = widgets.Text(description="Dataset", placeholder="all datasets")
        self.priority = widgets.IntText(description="Priority", value=100)
        self.config = widgets.Textarea(
            description="Config", value=json.dumps(EXAMPLES["filter"]), rows=3
        )
        self.preview_button = widgets.Button(description="Preview", icon="eye")
        self.save_button = widgets.Button(
            description="Save rule", icon="save", button_style="primary"
        )
        self.message_html = widgets.HTML()
        self.outcomes_html = widgets.HTML()
        self.rows_html = widgets.HTML()
        self.kind.observe(self._on_kind, names="value")
        self.preview_button.on_click(lambda _b: self.preview())
        self.save_button.on_click(lambda _b: self.save())
        form = widgets.VBox(
            [
                widgets.HBox([self.name, self.kind, self.field]),
                widgets.HBox([self.dataset, self.priority]),
                self.config,
                widgets.HBox([self.preview_button, self.save_button]),
            ]
        )
        super().__init__([form, self.message_html, self.outcomes_html, self.rows_html])

    @property
    def message(self) -> str:
        """The last error shown, or ``""``."""
        return self.message_html.value

    def draft(self) -> ValueRule:
        """The rule in the form.

        Raises:
            ConfigError: if the config is not a JSON object or the rule cannot run.
        """
        try:
            config = json.loads(self.config.value or "{}")
        except json.JSONDecodeError as err:
            raise ConfigError(f"config is not valid JSON: {err}") from err
        if not isinstance(config, dict):
            raise ConfigError(
                "config must be a JSON object, e.g. " + json.dumps(EXAMPLES["filter"])
            )
        rule = ValueRule(
            DRAFT_ID,
            self.name.value.strip(),
            self.kind.value,
            self.field.value.strip(),
            config,
            ingestion_id=self.dataset.value.strip() or None,
            priority=self.priority.value,
        )
        problem = check_rule(rule, self._regex_problem)
        if problem:
            raise ConfigError(f"rule {rule.name!r} cannot run: {problem}")
        return rule

    def _regex_problem(self, pattern: str) -> str | None:
        """Spark's own check of a pattern (the session is opened on the first pattern)."""
        if self._regex is None:
            self._regex = SparkRegexCheck(self.spark_factory())
        return self._regex(pattern)

    def preview(self) -> RulePreview | None:
        """Preview the stored rules plus the draft on the newest bronze rows."""
        try:
            draft = self.draft()
            result = preview_rules(
                self.spark_factory(),
                self.settings,
                self.catalog,
                ingestion_id=draft.ingestion_id,
                value_rules=[*self.catalog.list_value_rules(), draft],
                regex=self._regex_problem,
            )
        except WorkbenchError as err:
            self._error(str(err))
            return None
        self.last_preview = result
        self.message_html.value = ""
        self.outcomes_html.value = _outcomes_html(result)
        self.rows_html.value = _rows_html(result)
        return result

    def save(self) -> int | None:
        """Store the draft; returns the new rule's id (the stream applies it next trigger)."""
        try:
            draft = self.draft()
            rule_id = self.catalog.add_value_rule(
                draft.name,
                draft.kind,
                draft.field,
                draft.config,
                ingestion_id=draft.ingestion_id,
                priority=draft.priority,
            )
        except WorkbenchError as err:
            self._error(str(err))
            return None
        self.message_html.value = ""
        self.outcomes_html.value = (
            f"<p>Saved rule <b>{escape(draft.name)}</b> (id {rule_id}); the enrichment stream "
            "applies it from its next micro-batch.</p>"
        )
        return rule_id

    def _on_kind(self, change: dict[str, Any]) -> None:
        self.config.value = json.dumps(EXAMPLES.get(change["new"], {}))

    def _error(self, text: str) -> None:
        logger.info("rule editor error=%s", text)
        self.message_html.value = f'<p style="color:#b00020">{escape(text)}</p>'


def _outcomes_html(preview: RulePreview) -> str:
    columns = ("rule", "kind", "affected", "dropped", "flagged", "note")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    body = "".join(
        f"<tr><td>{escape(o.name)}{' (draft)' if o.rule_id == DRAFT_ID else ''}</td>"
        f"<td>{o.kind}</td><td>{o.affected}</td><td>{o.dropped}</td><td>{o.flagged}</td>"
        f"<td>{escape(o.skipped_reason or '')}</td></tr>"
        for o in preview.outcomes
    )
    keys = ", ".join(f"{escape(k)} ({n})" for k, n in list(preview.unmapped_keys.items())[:20])
    summary = (
        f"<p>{len(preview.before)} rows previewed, {len(preview.after)} kept, "
        f"{len(preview.dropped_ids)} dropped.</p>"
    )
    unmapped = f"<p>Unmapped raw keys: {keys}</p>" if keys else ""
    held = ""
    if preview.held_datasets:
        names = ", ".join(escape(d) for d in preview.held_datasets)
        held = (
            f"<p>Held until their device is registered and enabled: {names} "
            "(the stream keeps these rows in silver/_held).</p>"
        )
    return f"{summary}<table>{head}{body}</table>{unmapped}{held}"


def _rows_html(preview: RulePreview, limit: int = 20) -> str:
    after = {row["message_id"]: row for row in preview.after}
    rows = []
    for row in preview.before[:limit]:
        out = after.get(row["message_id"])
        result = "dropped" if out is None else json.dumps(out["fields"], sort_keys=True)
        flags = "" if out is None else ", ".join(out.get("flags") or [])
        rows.append(
            f"<tr><td><code>{escape(row['payload'][:120])}</code></td>"
            f"<td><code>{escape(result[:160])}</code></td><td>{escape(flags)}</td></tr>"
        )
    head = "<tr><th>before (bronze payload)</th><th>after (silver fields)</th><th>flags</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def build_rule_editor(
    catalog: Catalog, spark_factory: Callable[[], SparkSession], settings: Settings
) -> RuleEditorWidget:
    """A rule editor over the catalog's rules, previewing with sessions from ``spark_factory``."""
    return RuleEditorWidget(catalog, spark_factory, settings)
