"""Start-up wiring: config → engine → listeners, and the run loop with signal handling."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from roost.auth import build_authenticators, build_authorizers
from roost.config import Config
from roost.engine.engine import Engine
from roost.engine.store import MemoryStore, Store
from roost.store.sqlite import SqliteStore
from roost.transport.listener import ListenerState, start_listener
from roost.transport.tcp import Flusher, is_loopback
from roost.transport.tls import ContextHolder

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
    return Engine(AsyncioClock(loop), config.mqtt, store=store,
                  authenticators=build_authenticators(config.auth, allow),
                  authorizers=build_authorizers(config.auth))


class Broker:
    """A running node: its engine and listeners, stopped by ``stop()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine: Engine | None = None
        self.servers: list[asyncio.Server] = []
        self.listeners: list[ListenerState] = []
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Certificates first: a bad file stops start-up before anything is opened.
        contexts = [ContextHolder(listener, i, self.config.source)
                    if listener.type in ("tls", "wss") else None
                    for i, listener in enumerate(self.config.listeners)]
        Path(self.config.data_dir).mkdir(parents=True, exist_ok=True)
        store = build_store(self.config, loop)
        self.engine = build_engine(self.config, loop, store)
        resumed = self.engine.restore()
        log.info("store %s: %d sessions and %d retained messages restored",
                 self.config.store.type, resumed, self.engine.retained.count)
        flusher = Flusher(loop)
        for listener, tls in zip(self.config.listeners, contexts, strict=True):
            state = ListenerState(listener, self.engine, flusher, tls)
            server = await start_listener(state)
            self.listeners.append(state)
            self.servers.append(server)
            extra = f" at {listener.path}" if listener.type in ("ws", "wss") else ""
            extra += ", PROXY protocol" if listener.proxy_protocol else ""
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                log.info("listening on %s:%d (%s, %s%s)", host, port, listener.name,
                         listener.type, extra)

    def stop(self) -> None:
        self._stopped.set()

    def reload(self) -> None:
        """SIGHUP: load TLS certificates, keys and CAs again for new connections;
        open connections keep theirs, and a listener whose new files are bad keeps its
        previous context (the error is logged)."""
        log.info("SIGHUP: reloading TLS certificates")
        for state in self.listeners:
            if state.tls is not None:
                state.tls.reload()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
        for server in self.servers:
            server.close()
        for state in self.listeners:
            state.close()
        if self.engine is not None:
            self.engine.store.close()


async def serve(config: Config) -> None:
    broker = Broker(config)
    await broker.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, broker.stop)
    loop.add_signal_handler(signal.SIGHUP, broker.reload)
    await broker.wait_stopped()
    log.info("stopped")


def run(config: Config) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where available
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
