"""Start-up wiring: config → engine → listeners, and the run loop with signal handling."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from roost.config import Config
from roost.engine.engine import Engine
from roost.engine.hooks import AnonymousPolicy, Authenticator
from roost.engine.store import MemoryStore, Store
from roost.store.sqlite import SqliteStore
from roost.transport.tcp import Flusher, is_loopback, start_tcp_listener

log = logging.getLogger("roost")


class AsyncioClock:
    """The engine's clock on top of the running event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def monotonic(self) -> float:
        return self._loop.time()

    def wall(self) -> float:
        import time

        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)


def build_store(config: Config, loop: asyncio.AbstractEventLoop) -> Store:
    if config.store.type == "memory":
        return MemoryStore()
    return SqliteStore(config.data_dir, loop, config.store.durability)


def build_engine(config: Config, loop: asyncio.AbstractEventLoop,
                 store: Store | None = None) -> Engine:
    allow = {}
    for listener in config.listeners:
        anonymous = listener.allow_anonymous
        allow[listener.name] = is_loopback(listener.bind) if anonymous is None else anonymous
    authenticators: list[Authenticator] = [AnonymousPolicy(allow, accept_unverified=True)]
    return Engine(AsyncioClock(loop), config.mqtt, store=store,
                  authenticators=authenticators)


class Broker:
    """A running node: its engine and listeners, stopped by ``stop()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine: Engine | None = None
        self.servers: list[asyncio.Server] = []
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        Path(self.config.data_dir).mkdir(parents=True, exist_ok=True)
        store = build_store(self.config, loop)
        self.engine = build_engine(self.config, loop, store)
        resumed = self.engine.restore()
        log.info("store %s: %d sessions and %d retained messages restored",
                 self.config.store.type, resumed, self.engine.retained.count)
        flusher = Flusher(loop)
        for listener in self.config.listeners:
            server = await start_tcp_listener(self.engine, listener.name, listener.bind,
                                              listener.port, flusher)
            self.servers.append(server)
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                log.info("listening on %s:%d (%s, %s)", host, port, listener.name,
                         listener.type)

    def stop(self) -> None:
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
        for server in self.servers:
            server.close()
        if self.engine is not None:
            self.engine.store.close()


async def serve(config: Config) -> None:
    broker = Broker(config)
    await broker.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, broker.stop)
    await broker.wait_stopped()
    log.info("stopped")


def run(config: Config) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where available
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
