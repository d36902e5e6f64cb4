"""TCP listener: one asyncio protocol per connection, output flushed once per loop turn.

Every packet a channel writes during one turn of the event loop is collected and sent
with a single ``writelines``, so a publish that fans out to many subscribers costs one
system call per subscriber rather than one per packet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from roost.engine.channel import Channel
from roost.engine.engine import Engine

log = logging.getLogger("roost.transport")


class Flusher:
    """Collects connections with pending output and flushes them at the end of a turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[MqttConnection] = []
        self._scheduled = False

    def mark(self, conn: MqttConnection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()


class MqttConnection(asyncio.Protocol):
    """A TCP connection; implements the engine's ``Link``."""

    def __init__(self, engine: Engine, listener: str, flusher: Flusher) -> None:
        self._engine = engine
        self._listener = listener
        self._flusher = flusher
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._pending = 0
        self._closing = False
        self._peer = "?"
        self.channel: Channel | None = None

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            host, port = peer[0], peer[1]
            self._peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.channel = Channel(self._engine, self)

    def data_received(self, data: bytes) -> None:
        if self.channel is not None:
            self.channel.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.channel is not None:
            self.channel.connection_lost()
            self.channel = None

    # -- Link ---------------------------------------------------------------------

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def listener(self) -> str:
        return self._listener

    @property
    def certificate_identity(self) -> str | None:
        return None

    def write(self, data: bytes) -> None:
        if self._transport is None or self._closing:
            return
        if not self._out:
            self._flusher.mark(self)
        self._out.append(data)
        self._pending += len(data)

    def buffered(self) -> int:
        size = self._transport.get_write_buffer_size() if self._transport else 0
        return size + self._pending

    def flush(self) -> None:
        out, self._out = self._out, []
        self._pending = 0
        if out and self._transport is not None:
            self._transport.writelines(out)

    def close(self) -> None:
        if self._closing:
            return
        self.flush()
        self._closing = True
        if self._transport is not None:
            self._transport.close()


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start_tcp_listener(engine: Engine, name: str, host: str, port: int,
                             flusher: Flusher, backlog: int = 4096) -> asyncio.Server:
    loop = asyncio.get_running_loop()

    def factory() -> MqttConnection:
        return MqttConnection(engine, name, flusher)

    server = await loop.create_server(factory, host, port, backlog=backlog, reuse_address=True)
    return server
