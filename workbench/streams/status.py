"""What the stream manager reports about a query: typed values with a JSON form.

No Spark here: the engine's Python client rebuilds these from the HTTP answers
(:meth:`StreamStatus.from_dict`) in processes that never load pyspark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

#: ``running``: active; ``stopping``: waiting for its running batch before a stop or restart;
#: ``stopped``: stopped by name (or never started); ``failed``: ended with an error (a restart
#: is scheduled unless the error was terminal, see ``StreamStatus.restart_scheduled``);
#: ``ended``: ended without error, restart scheduled.
State = Literal["running", "stopping", "stopped", "failed", "ended"]


@dataclass(frozen=True)
class Lag:
    """How far a query is behind its input.

    Attributes:
        kind: ``files`` (a file source) or ``versions`` (a Delta source).
        pending: input files, or table versions, not yet in a committed batch.
        seconds: age of the oldest pending input (0.0 when nothing is pending).
    """

    kind: Literal["files", "versions"]
    pending: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready fields."""
        return {"kind": self.kind, "pending": self.pending, "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lag:
        """From :meth:`to_dict`'s form."""
        return cls(data["kind"], int(data["pending"]), float(data["seconds"]))


@dataclass(frozen=True)
class StreamStatus:
    """One managed query's status (``GET /api/streams``, ``GET /status``).

    Attributes:
        name: the query's name.
        id: Spark's id of the current run, None while no run exists.
        state: see :data:`State`.
        active: the query runs now.
        batch_running: a micro-batch is executing now.
        last_batch_id: the newest batch Spark reported progress for.
        input_rows_per_second: Spark's rate of rows arriving, last batch.
        processed_rows_per_second: Spark's rate of rows processed, last batch.
        last_batch_rows: input rows of the last batch.
        last_batch_duration_ms: wall time of the last trigger.
        last_latest_offset_ms: time the last trigger took to find its input.
        watermark: Spark's watermark (ISO, UTC): gold's and computations' is on event time
            (windows ending before it are complete), the enrichment's is the de-duplication's
            horizon.
        restarts: automatic, by name and by the schema watchdog.
        last_restart_reason: ``failure``, ``by name`` or ``schema change: ...``.
        exception: the last error, as text.
        error_code: the stable code of the error that failed the query's last run, when it is
            known (always for a terminal one).
        restart_scheduled: a failed or ended query will be restarted; False once a terminal
            error stopped it (until it is started by name).
        lag: the lag behind its input (None without a lag probe, or when it cannot be read).
        lag_error: why the lag could not be read.
    """

    name: str
    id: str | None
    state: State
    active: bool
    batch_running: bool
    last_batch_id: int | None
    input_rows_per_second: float | None
    processed_rows_per_second: float | None
    last_batch_rows: int | None
    last_batch_duration_ms: int | None
    last_latest_offset_ms: int | None
    watermark: str | None
    restarts: int
    last_restart_reason: str | None
    exception: str | None
    error_code: str | None
    restart_scheduled: bool
    lag: Lag | None
    lag_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready fields (``lag`` as :meth:`Lag.to_dict`)."""
        data = asdict(self)
        data["lag"] = None if self.lag is None else self.lag.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamStatus:
        """From :meth:`to_dict`'s form; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        lag = values.get("lag")
        values["lag"] = None if lag is None else Lag.from_dict(lag)
        values.setdefault("error_code", None)
        values.setdefault("restart_scheduled", False)
        return cls(**values)
