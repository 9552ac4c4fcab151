"""The REST ceiling: a trivial endpoint that reads the whole body and answers.

Run as ``python -m workbench.bench.echo_server --port P``. The same server stack as the ingest
service (uvicorn, one worker, same loop and HTTP parser) with a bare ASGI app: no parsing, no
writing, a small JSON answer with the line count. It measures what the client and the HTTP
layer alone can carry on this machine.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Read the body, count its lines, answer ``{"accepted": n}``."""
    if scope["type"] != "http":
        return
    body = bytearray()
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = json.dumps({"accepted": body.count(b"\n") + 1 if body else 0}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def main() -> int:
    """Serve on loopback until SIGTERM."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
