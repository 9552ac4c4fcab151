"""Resolving an event loop's futures from other threads with as few loop wake-ups as possible.

The bronze flusher makes the rows of several pushes durable at once and then calls each push's
callback. A ``loop.call_soon_threadsafe`` per callback wakes the event loop once per push (a
write to its self-pipe, a return from ``select``, a pass of the loop): at full REST rate those
wake-ups were a noticeable share of the ingest process. A :class:`LoopWaker` queues the futures
and schedules one drain for however many arrive before the loop gets to it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref


class LoopWaker:
    """Sets futures of one event loop done from any thread, draining them in one callback.

    Args:
        loop: the loop that owns the futures.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ready: list[asyncio.Future[bool]] = []
        self._lock = threading.Lock()

    def resolve(self, future: asyncio.Future[bool]) -> None:
        """Mark ``future`` done (result True) soon; callable from any thread."""
        with self._lock:
            first = not self._ready
            self._ready.append(future)
        if first:  # a drain is not scheduled yet: the queue was empty
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for future in ready:
            if not future.done():  # cancelled meanwhile (the client went away)
                future.set_result(True)


_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopWaker] = (
    weakref.WeakKeyDictionary()
)


def waker_of(loop: asyncio.AbstractEventLoop) -> LoopWaker:
    """The :class:`LoopWaker` of ``loop`` (one per loop, made on first use, on the loop)."""
    waker = _wakers.get(loop)
    if waker is None:
        waker = _wakers[loop] = LoopWaker(loop)
    return waker
