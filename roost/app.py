"""Start-up wiring: config → engine → listeners, the node's lifecycle, and the run loop
with signal handling."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from roost import auth
from roost.admin.drain import drain
from roost.admin.http import start_http
from roost.admin.node import ClientInfo, EngineFigures, ListenerFigures, SubscriptionInfo
from roost.admin.sys_topics import SysTopics
from roost.auth import build_authenticators, build_authorizers
from roost.config import Config, ConfigError, format_host_port
from roost.engine.channel import Channel
from roost.engine.engine import Engine
from roost.engine.message import Message
from roost.engine.router import Router
from roost.engine.store import MemoryStore, Store
from roost.mqtt import ReasonCode
from roost.mqtt.properties import Properties
from roost.store.sqlite import SqliteStore
from roost.transport.flush import Flusher
from roost.transport.listener import ListenerState
from roost.transport.tcp import is_loopback, start_listener
from roost.transport.tls import ContextHolder

if TYPE_CHECKING:
    from roost.cluster.node import ClusterNode

log = logging.getLogger("roost")


class AsyncioClock:
    """The engine's clock on top of the running event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def monotonic(self) -> float:
        return self._loop.time()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)


def build_store(config: Config, loop: asyncio.AbstractEventLoop) -> Store:
    if config.store.type == "memory":
        return MemoryStore()
    return SqliteStore(config.data_dir, loop, config.store.durability)


def build_engine(config: Config, loop: asyncio.AbstractEventLoop,
                 store: Store | None = None, router: Router | None = None) -> Engine:
    allow = {}
    for listener in config.listeners:
        anonymous = listener.allow_anonymous
        allow[listener.name] = is_loopback(listener.bind) if anonymous is None else anonymous
    return Engine(AsyncioClock(loop), config.mqtt, store=store, router=router,
                  authenticators=build_authenticators(config.auth, allow),
                  authorizers=build_authorizers(config.auth))


class Broker:
    """A node: engine, listeners, operations endpoint and ``$SYS`` topics, as one
    lifecycle; also the operations side's view of it (``roost.admin.node.Node``).

    ``async with Broker(config) as broker:`` starts everything, or raises with nothing
    left open. Leaving the block stops everything: readiness goes false, the tasks the
    node started (``$SYS`` updates, a drain still running) are cancelled and awaited,
    then the listeners, the store (which writes everything staged) and the HTTP endpoint
    are closed. ``wait_stopped()`` returns once ``stop()`` is called, directly or at the
    end of a drain.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine: Engine | None = None
        self._servers: list[asyncio.Server] = []
        self._listeners: list[ListenerState] = []
        # True while the node takes new clients: set once the listeners are open,
        # cleared for drain and stop. /readyz answers 503 while it is False.
        self._ready = False
        self._stopped = asyncio.Event()
        self._tasks = asyncio.TaskGroup()
        self._sys_task: asyncio.Task[None] | None = None
        self._draining: asyncio.Task[None] | None = None
        # Cluster mode's side of the node (config.cluster); None on the embedded path.
        self._cluster: ClusterNode | None = None
        self._exit = AsyncExitStack()

    async def __aenter__(self) -> Broker:
        async with AsyncExitStack() as stack:
            await self._start(stack)
            self._exit = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._exit.aclose()

    async def _start(self, stack: AsyncExitStack) -> None:
        """Open everything, registering on ``stack`` how each part is closed (in the
        reverse order)."""
        loop = asyncio.get_running_loop()
        # Certificates first: a bad file stops start-up before anything is opened.
        contexts = [ContextHolder(listener, i, self.config.source)
                    if listener.type in ("tls", "wss") else None
                    for i, listener in enumerate(self.config.listeners)]
        Path(self.config.data_dir).mkdir(parents=True, exist_ok=True)
        if self.config.http.enabled:
            # Up before recovery, so /healthz answers and /readyz says 503 meanwhile.
            http_server = await start_http(self, *self.config.http.address)
            stack.callback(http_server.close)
        store = build_store(self.config, loop)
        stack.callback(store.close)
        if self.config.cluster is not None:
            # Imported here: the embedded broker never loads the NATS client.
            from roost.cluster.node import ClusterNode

            self._cluster = ClusterNode(self.config.cluster, self.config.mqtt)
        cluster = self._cluster
        self.engine = build_engine(self.config, loop, store,
                                   cluster.router if cluster is not None else None)
        resumed = self.engine.restore()
        log.info("store %s: %d sessions and %d retained messages restored",
                 self.config.store.type, resumed, self.engine.retained.count)
        if cluster is not None:
            # Waits until NATS is reachable: no listener is open before.
            await cluster.start(self.engine)
            stack.push_async_callback(cluster.close)
        flusher = Flusher(loop)
        for listener, tls in zip(self.config.listeners, contexts, strict=True):
            state = ListenerState(listener, self.engine, flusher, tls)
            stack.callback(state.close)
            server = await start_listener(state)
            stack.callback(server.close)
            self._listeners.append(state)
            self._servers.append(server)
            extra = f" at {listener.path}" if listener.type in ("ws", "wss") else ""
            extra += ", PROXY protocol" if listener.proxy_protocol else ""
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                log.info("listening on %s (%s, %s%s)", format_host_port(host, port),
                         listener.name, listener.type, extra)
        # The task group is entered last, once nothing else can fail: an error passing
        # through an open TaskGroup comes out wrapped in an ExceptionGroup, which `roost
        # serve` would not report as a start-up error. At stop it is left first, so its
        # tasks are over before anything they use is closed.
        await stack.enter_async_context(self._tasks)
        stack.callback(self._cancel_tasks)
        stack.callback(self._not_ready)
        if cluster is not None:
            cluster.run(self._tasks)
        self._ready = True
        if self.config.sys.interval > 0:
            sys_topics = SysTopics(self, self.config.sys.interval)
            self._sys_task = self._tasks.create_task(sys_topics.run())

    def _not_ready(self) -> None:
        self._ready = False

    def _cancel_tasks(self) -> None:
        for task in (self._sys_task, self._draining):
            if task is not None:
                task.cancel()
        if self._cluster is not None:
            self._cluster.cancel()

    def stop(self) -> None:
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def drain(self) -> None:
        """SIGTERM (and SIGINT): graceful drain (see roost.admin.drain), then stop; a
        second signal during the drain stops at once."""
        if self._draining is None and not self._stopped.is_set():
            self._draining = self._tasks.create_task(self._drain())
            return
        log.info("second signal: stopping now")
        self.stop()

    async def _drain(self) -> None:
        try:
            await drain(self, self.config.drain)
        except Exception:
            # The node must stop even so; the task group would turn the error into a
            # crash at exit instead.
            log.exception("drain failed")
        finally:
            self.stop()

    def reload(self) -> None:
        """SIGHUP: load TLS certificates, keys and CAs again for new connections;
        open connections keep theirs, and a listener whose new files are bad keeps its
        previous context (the error is logged)."""
        log.info("SIGHUP: reloading TLS certificates, password file, JWT keys and ACL")
        for state in self._listeners:
            if state.tls is not None:
                state.tls.reload()
        if self.engine is not None:
            try:
                removed = auth.reload(self.engine)
            except ConfigError as exc:
                log.error("SIGHUP: reload failed, previous version stays in force: %s", exc,
                          extra={"event": "reload", "ok": False})
            else:
                log.info("SIGHUP: authentication and ACL reloaded; %d subscriptions no "
                         "longer authorized were removed", removed,
                         extra={"event": "reload", "ok": True})

    # -- roost.admin.node.Node ------------------------------------------------------

    @property
    def ready(self) -> bool:
        # In cluster mode, only while the node reaches NATS.
        return self._ready and (self._cluster is None or self._cluster.ready)

    def listeners(self) -> Sequence[ListenerFigures]:
        return self._listeners

    def figures(self) -> EngineFigures | None:
        engine = self.engine
        if engine is None:
            return None
        return EngineFigures(engine.stats, engine.sessions.census(),
                             engine.router.subscription_count, engine.retained.count,
                             engine.store)

    def _channels(self) -> list[Channel]:
        if self.engine is None:
            return []
        return [outlet for outlet in self.engine.sessions.outlets()
                if isinstance(outlet, Channel)]

    def _channel(self, client_id: str) -> Channel | None:
        session = self.engine.sessions.get(client_id) if self.engine is not None else None
        outlet = session.outlet if session is not None else None
        return outlet if isinstance(outlet, Channel) else None

    def clients(self) -> list[ClientInfo]:
        return [_client_info(channel) for channel in self._channels()]

    def client(self, client_id: str) -> ClientInfo | None:
        channel = self._channel(client_id)
        return _client_info(channel) if channel is not None else None

    def subscriptions(self) -> list[SubscriptionInfo]:
        if self.engine is None:
            return []
        return [SubscriptionInfo(session.client_id, sub.topic_filter, sub.qos, session.online)
                for session in self.engine.sessions.sessions.values()
                for sub in session.subscriptions.values()]

    def disconnect(self, client_id: str, reason: ReasonCode, why: str) -> bool:
        channel = self._channel(client_id)
        if channel is None:
            return False
        channel.disconnect(reason, why)
        return True

    def disconnect_all(self, reason: ReasonCode, why: str,
                       properties: Properties | None = None) -> int:
        if self.engine is None:
            return 0
        outlets = self.engine.sessions.outlets()
        for outlet in outlets:
            outlet.disconnect(reason, why, properties)
        return len(outlets)

    def stop_accepting(self) -> None:
        self._ready = False
        for server in self._servers:
            server.close()

    def publish_transient(self, message: Message) -> None:
        if self.engine is not None:
            # Origin.SYS: retained in memory only, never written to the store.
            self.engine.publish(message)


def _client_info(channel: Channel) -> ClientInfo:
    session = channel.session
    return ClientInfo(channel.client_id, channel.link.peer, channel.level,
                      channel.link.listener, channel.username, channel.connected_at,
                      len(session.subscriptions) if session else 0)


async def serve(config: Config) -> None:
    async with Broker(config) as broker:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, broker.drain)
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
