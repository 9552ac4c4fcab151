"""What every connector shares: the sink it feeds and the health it reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from workbench.connectors.envelope import Envelope

#: Where connectors deliver envelopes; ``on_durable`` runs once they are safely in bronze.
#: May block (back-pressure): a connector then stops reading from its transport.
Sink = Callable[[list[Envelope], Callable[[], None] | None], None]


@dataclass
class SourceHealth:
    """A running source's state, as shown by ``/health`` and ``workbench status``."""

    name: str
    type: str
    ingestion_id: str
    running: bool
    connected: bool
    received: int = 0
    last_error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Connector(Protocol):
    """A source of messages: started and stopped by the ingest service."""

    name: str
    ingestion_id: str

    def start(self) -> None:
        """Begin delivering envelopes to the sink (returns at once)."""
        ...

    def stop(self) -> None:
        """Stop receiving; acknowledged messages are already durable."""
        ...

    def health(self) -> SourceHealth:
        """Current state."""
        ...
