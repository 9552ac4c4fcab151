"""The benchmark REST client: NDJSON batches POSTed by a few concurrent senders.

Run as ``python -m workbench.bench.rest_client --url URL [--seconds S] [--senders N] [--batch B]``;
the API token in ``WORKBENCH__AUTH__TOKEN`` (if any) goes with every request.
Each sender thread owns one keep-alive ``httpx.Client`` and posts batches of ``B`` distinct
~150-byte readings back to back; a batch counts as sent only when answered 200. Prints one
JSON line: ``records`` (answered), ``batches``, ``errors``, ``first``, ``last`` (wall times of
the first request and the last answer).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime

import httpx

from workbench.bench.qos1_publisher import reading

NDJSON = {"content-type": "application/x-ndjson"}
TOKEN_ENV = "WORKBENCH__AUTH__TOKEN"


class Senders:
    """Shared counters of the sender threads."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.records = 0
        self.batches = 0
        self.errors: list[str] = []
        self.last = 0.0
        self._lock = threading.Lock()
        self._batch_numbers = itertools.count()

    def body(self) -> bytes:
        """A batch of distinct readings (every record id in the lake is distinct)."""
        start = next(self._batch_numbers) * self.batch
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return b"\n".join(reading(seq, stamp) for seq in range(start, start + self.batch))

    def send(self, url: str, deadline: float) -> None:
        """Post batches to ``url`` until ``deadline`` (monotonic)."""
        token = os.environ.get(TOKEN_ENV)
        headers = {**NDJSON, **({"authorization": f"Bearer {token}"} if token else {})}
        with httpx.Client(timeout=120) as client:
            while time.monotonic() < deadline:
                body = self.body()
                try:
                    response = client.post(url, content=body, headers=headers)
                except httpx.HTTPError as err:
                    with self._lock:
                        self.errors.append(f"{type(err).__name__}: {err}")
                    continue
                with self._lock:
                    if response.status_code == 200:
                        self.records += self.batch
                        self.batches += 1
                        self.last = time.time()
                    else:
                        self.errors.append(f"{response.status_code}: {response.text[:200]}")


def run_client(url: str, *, seconds: float, senders: int, batch: int) -> dict[str, object]:
    """Run ``senders`` threads for ``seconds`` and summarize."""
    state = Senders(batch)
    first = time.time()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=state.send, args=(url, deadline), name=f"sender-{i}")
        for i in range(senders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "records": state.records,
        "batches": state.batches,
        "errors": len(state.errors),
        "first_errors": state.errors[:3],
        "first": first,
        "last": state.last,
    }


def main() -> int:
    """Parse arguments, send, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    summary = run_client(args.url, seconds=args.seconds, senders=args.senders, batch=args.batch)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
