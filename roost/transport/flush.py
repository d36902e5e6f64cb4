"""Output flushed once per turn of the event loop.

Every packet a connection is given during one turn is collected, and the connection is
flushed once at the end of the turn, so a publish that fans out to many subscribers
costs one system call per subscriber rather than one per packet.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Flushable(Protocol):
    """A connection holding output until it is told to send it."""

    def flush(self) -> None: ...


class Flusher:
    """Collects connections with pending output and flushes them at the end of a turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Flushable] = []
        self._scheduled = False

    def mark(self, conn: Flushable) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()
