"""What every connector shares: the sink it feeds and the health it reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from workbench.connectors.envelope import Envelope

#: Where connectors deliver envelopes; ``on_durable`` runs once they are safely in bronze.
#: May block (back-pressure): a connector then stops reading from its transport.
Sink = Callable[[list[Envelope], Callable[[], None] | None], None]


@dataclass(frozen=True)
class SourceHealth:
    """A source's state, as shown by ``/health`` and ``workbench sources health``."""

    name: str
    type: str
    ingestion_id: str
    running: bool
    connected: bool
    received: int = 0
    last_error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Connector-specific state (an MQTT topic, a poller's last HTTP status...)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form served by the ingest API."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceHealth:
        """Rebuild one from its JSON form (unknown keys are ignored, for newer servers)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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
