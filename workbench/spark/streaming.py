"""What every streaming query of the engine shares: name, checkpoint, trigger, waiting."""

from __future__ import annotations

import logging
from typing import Literal

from pyspark.errors import StreamingQueryException
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from workbench.core.errors import EngineError

log = logging.getLogger(__name__)

#: ``processing_time`` for the service; ``available_now`` drains what exists and stops
#: (tests, backfills).
TriggerMode = Literal["processing_time", "available_now"]


def start_query(
    writer: DataStreamWriter,
    *,
    name: str,
    checkpoints: str,
    trigger: TriggerMode,
    interval_seconds: float,
) -> StreamingQuery:
    """Name the query, give it its checkpoint under ``checkpoints``, set the trigger, start."""
    writer = writer.queryName(name).option("checkpointLocation", f"{checkpoints}/{name}")
    if trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{int(interval_seconds * 1000)} milliseconds")
    query = writer.start()
    log.info("stream started query=%s id=%s trigger=%s", name, query.id, trigger)
    return query


def await_query(query: StreamingQuery) -> None:
    """Wait for a query to finish.

    Raises:
        EngineError: if it failed.
    """
    try:
        query.awaitTermination()
    except StreamingQueryException as err:
        raise EngineError(f"stream {query.name} failed: {err}", query=query.name) from err
