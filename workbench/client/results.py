"""Query answers as the client holds them: rows, their types and their label."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["QueryAnswer"]

_TIME_TYPES = ("timestamp", "timestamp_ntz", "date")


@dataclass(frozen=True)
class QueryAnswer:
    """One answer of the engine's query service."""

    columns: list[tuple[str, str]]
    """``(name, Spark type)`` per column."""
    rows: list[list[Any]]
    truncated: bool
    limit: int
    sensitivity: str
    devices: dict[str, str] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    """Anything else the answer carried (a tile's ``cached_at``, ``versions``...)."""

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> QueryAnswer:
        """From the JSON of ``POST /api/query`` (and the routes answering the same)."""
        label = body.get("sensitivity") or {}
        known = {"columns", "rows", "row_count", "truncated", "limit", "sensitivity", "seconds"}
        return cls(
            columns=[(c["name"], c["type"]) for c in body["columns"]],
            rows=body["rows"],
            truncated=bool(body.get("truncated")),
            limit=int(body.get("limit") or 0),
            sensitivity=str(label.get("label", "public")),
            devices=dict(label.get("devices") or {}),
            tables=list(label.get("tables") or []),
            seconds=float(body.get("seconds") or 0.0),
            extras={k: v for k, v in body.items() if k not in known},
        )

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a pandas frame, time columns as UTC timestamps; the label, truncation
        and tables in ``frame.attrs``."""
        import pandas as pd

        names = [name for name, _ in self.columns]
        frame = pd.DataFrame(self.rows, columns=names)
        for name, kind in self.columns:
            if kind in _TIME_TYPES and not frame.empty:
                frame[name] = pd.to_datetime(frame[name], utc=kind == "timestamp")
        frame.attrs.update(
            sensitivity=self.sensitivity, truncated=self.truncated, tables=list(self.tables)
        )
        return frame
