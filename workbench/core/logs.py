"""Logging setup for entry points (library code never configures handlers)."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    """Send ``key=value`` style records to stderr; called once by the CLI."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for noisy in ("py4j", "urllib3", "asyncio", "matplotlib", "httpx", "httpcore", "traitlets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
