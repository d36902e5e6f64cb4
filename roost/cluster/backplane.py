"""The bus between nodes on core NATS (``Bus`` of ``roost.cluster.router``).

A node holds two NATS connections, both to the configured servers, reconnecting for
ever with exponential back-off:

- **main** publishes this node's messages and holds the plain subscriptions. It
  connects with ``no_echo``: NATS never gives a node its own messages back on them
  (its local subscribers were served already).
- **groups** holds the queue subscriptions of shared groups. It needs echo: a message
  published by this node must reach this node's own group members through NATS, which
  picks one member node per group for the whole cluster. (``no_echo`` on the main
  connection would make NATS skip this node's queue subscriptions.)

Outgoing messages wait in a bounded backlog that one task publishes (``nc.publish``
only buffers; nats-py's flusher writes the buffer in batches): the router, called
synchronously by the engine, never awaits NATS. Beyond the backlog a message is
dropped and counted. Incoming messages arrive on nats-py's per-subscription tasks and
go to ``Engine.publish`` with their ``Feed`` as source. Subscription changes are
applied in order by another task.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import ssl
from collections import deque
from functools import lru_cache, partial
from typing import Any
from urllib.parse import ParseResult, SplitResult, urlsplit

import nats.errors
from nats.aio.client import Client, Server
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from roost.cluster.codec import headers_for, headers_size, message_from, source_on
from roost.cluster.router import ClusterStats, Feed
from roost.cluster.subjects import subject_prefix, subject_to_topic
from roost.config import ClusterConfig
from roost.engine.clock import Clock
from roost.engine.engine import Engine
from roost.engine.message import Message
from roost.engine.subscriptions import Subscriber

log = logging.getLogger("roost.cluster")

# Messages, and payload bytes, waiting to be published; more are dropped (across nodes
# delivery is at most once).
MAX_BACKLOG = 100_000
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
# Reconnect back-off: the first retry after about RETRY_MIN, doubling up to RETRY_MAX,
# each with jitter so that nodes do not come back in step.
RETRY_MIN = 0.1
RETRY_MAX = 5.0
# nats-py takes whole seconds. It retries each server after CONNECT_RETRY if the
# first connect fails after all (a server that takes TCP but refuses the credentials).
CONNECT_RETRY = 1
CONNECT_TIMEOUT = 2
DRAIN_TIMEOUT = 5
# A payload this far under max_payload fits with any headers; a larger one is measured.
_HEADROOM = 64 * 1024
_CACHED_TOPICS = 16_384


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (1 or more)."""
    base: float = RETRY_MIN * 2.0 ** min(failures - 1, 8)
    return min(RETRY_MAX, base) * random.uniform(0.5, 1.0)


def display(uri: ParseResult | SplitResult | str) -> str:
    """A server URL without user or password, for logs."""
    parts = urlsplit(uri) if isinstance(uri, str) else uri
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class NatsBackplane:
    """This node's connections to NATS (see the module docstring)."""

    def __init__(self, config: ClusterConfig, stats: ClusterStats) -> None:
        self.config = config
        self.node_id = config.node_id
        self.prefix = subject_prefix(config.name)
        self.stats = stats
        self.main = Client()
        self.groups = Client()
        # Whether both connections are up: routing crosses nodes only then.
        self.connected = False
        self._engine: Engine | None = None
        self._clock: Clock | None = None
        self._backlog: deque[tuple[str, Message, str | None]] = deque()
        self._backlog_bytes = 0
        self._backlog_ready = asyncio.Event()
        self._changes: deque[tuple[bool, Feed]] = deque()
        self._changes_ready = asyncio.Event()
        self._subs: dict[Feed, list[NatsSubscription]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._topic = lru_cache(maxsize=_CACHED_TOPICS)(partial(subject_to_topic,
                                                                self.prefix))

    # -- Bus ------------------------------------------------------------------------

    def send(self, subject: str, message: Message, source: Subscriber | None) -> int:
        backlog = self._backlog
        size = len(message.payload)
        if len(backlog) >= MAX_BACKLOG or self._backlog_bytes + size > MAX_BACKLOG_BYTES:
            self.stats.dropped_backlog += 1
            self.stats.once("backlog", "cluster: %d messages (%d bytes) wait for NATS "
                            "already, dropping more", len(backlog), self._backlog_bytes)
            return 0
        self._backlog_bytes += size
        backlog.append((subject, message, source.key if source is not None else None))
        if not self._backlog_ready.is_set():
            self._backlog_ready.set()
        return 1

    def watch(self, feed: Feed) -> None:
        self._changes.append((True, feed))
        self._changes_ready.set()

    def unwatch(self, feed: Feed) -> None:
        self._changes.append((False, feed))
        self._changes_ready.set()

    # -- Lifecycle ------------------------------------------------------------------

    async def start(self, engine: Engine) -> None:
        """Connect both connections (waiting as long as NATS is unreachable, retrying
        and logging each failure) and subscribe what the node's sessions already hold."""
        self._engine = engine
        self._clock = engine.clock
        log.info("cluster %r, node %r: connecting to NATS at %s", self.config.name,
                 self.node_id, ", ".join(map(display, self.config.urls)))
        urls = await self._reachable()
        await self._connect(self.main, "main", urls, no_echo=True)
        await self._connect(self.groups, "groups", urls, no_echo=False)
        self._update_connected()
        await self._apply_changes()

    def run(self, tasks: asyncio.TaskGroup) -> None:
        """Start publishing and applying subscription changes, as tasks of ``tasks``
        (the node's task group); ``cancel`` ends them."""
        self._tasks = [tasks.create_task(self._publisher()),
                       tasks.create_task(self._subscriber())]

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def close(self) -> None:
        """Publish what is still waiting, then drain both connections: subscriptions
        end, buffered messages are written, the connections close."""
        self.cancel()
        if self.connected:
            await self._publish_backlog()
        self.connected = False
        for nc in (self.groups, self.main):
            if nc.is_connected:
                try:
                    await asyncio.wait_for(nc.drain(), DRAIN_TIMEOUT)
                except (TimeoutError, nats.errors.Error) as exc:
                    log.warning("cluster: draining a NATS connection failed: %s", exc)
            if not nc.is_closed:
                await nc.close()

    # -- Connections ----------------------------------------------------------------

    async def _reachable(self) -> list[str]:
        """The configured URLs, starting with one that takes TCP connections: tries
        each in turn, logging each failure, with back-off after each round, until one
        does. (nats-py's own first connect names no server when it fails.)"""
        urls = list(self.config.urls)
        for attempt in itertools.count():
            i = attempt % len(urls)
            url = urlsplit(urls[i])
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(url.hostname, url.port or 4222), CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                delay = backoff(attempt // len(urls) + 1) if i == len(urls) - 1 else 0.0
                log.warning("cluster: cannot reach NATS at %s (%s); next attempt at %s in "
                            "%.1f s", display(url), exc or "timed out",
                            display(urls[(i + 1) % len(urls)]), delay)
                await asyncio.sleep(delay)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return urls[i:] + urls[:i]
        raise AssertionError("unreachable")

    async def _connect(self, nc: Client, role: str, urls: list[str], no_echo: bool) -> None:
        config = self.config
        options: dict[str, Any] = {}
        if config.credentials_file:
            options["user_credentials"] = config.credentials_file
        tls = self._tls_context()
        if tls is not None:
            options["tls"] = tls
        await nc.connect(
            servers=urls, dont_randomize=True,
            name=f"roost {config.name} {self.node_id} {role}",
            no_echo=no_echo, allow_reconnect=True, max_reconnect_attempts=-1,
            reconnect_time_wait=CONNECT_RETRY, connect_timeout=CONNECT_TIMEOUT,
            drain_timeout=DRAIN_TIMEOUT,
            reconnect_to_server_handler=partial(self._next_server, role),
            error_cb=partial(self._error, role),
            disconnected_cb=partial(self._disconnected, role),
            reconnected_cb=partial(self._reconnected, role, nc),
            closed_cb=partial(self._closed, role), **options)
        url = display(nc.connected_url) if nc.connected_url else "?"
        version = nc.connected_server_version
        log.info("cluster: NATS connection %r up, to %s (nats-server %d.%d.%d)", role, url,
                 version.major, version.minor, version.patch)

    def _tls_context(self) -> ssl.SSLContext | None:
        config = self.config
        if not (config.tls_ca_file or config.tls_cert_file
                or any(url.startswith("tls://") for url in config.urls)):
            return None
        context = ssl.create_default_context(cafile=config.tls_ca_file)
        if config.tls_cert_file:
            context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
        return context

    def _next_server(self, role: str, servers: list[Server], info: dict[str, Any]
                     ) -> tuple[Server, float]:
        """Reconnect to the server tried least, after an exponential back-off."""
        server = min(servers, key=lambda s: s.reconnects)
        delay = backoff(server.reconnects + 1)
        log.info("cluster: NATS connection %r: reconnecting to %s in %.1f s", role,
                 display(server.uri), delay)
        return server, delay

    async def _error(self, role: str, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            self.stats.once("slow", "cluster: NATS dropped messages for a subscription "
                            "this node did not read fast enough (%s)", exc)
            return
        log.warning("cluster: NATS connection %r: %s", role, exc or type(exc).__name__)

    async def _disconnected(self, role: str) -> None:
        # Each connection says so: which of the two notices first is a race.
        log.warning("cluster: NATS connection %r lost: routing stays on this node, "
                    "and /readyz says 503, until it is back", role)
        self._update_connected()

    async def _reconnected(self, role: str, nc: Client) -> None:
        url = display(nc.connected_url) if nc.connected_url else "?"
        log.info("cluster: NATS connection %r back, to %s", role, url)
        self._update_connected()

    async def _closed(self, role: str) -> None:
        self._update_connected()

    def _update_connected(self) -> None:
        self.connected = self.main.is_connected and self.groups.is_connected

    # -- Outgoing -------------------------------------------------------------------

    async def _publisher(self) -> None:
        ready = self._backlog_ready
        while True:
            await ready.wait()
            ready.clear()
            await self._publish_backlog()

    async def _publish_backlog(self) -> None:
        assert self._clock is not None
        backlog = self._backlog
        nc = self.main
        stats = self.stats
        limit = nc.max_payload
        now = self._clock.monotonic()
        while backlog:
            subject, message, source = backlog.popleft()
            payload = message.payload
            self._backlog_bytes -= len(payload)
            try:
                headers = headers_for(message, now,
                                      (self.node_id, source) if source is not None else None)
                if (len(payload) > limit - _HEADROOM
                        and len(payload) + headers_size(headers) > limit):
                    stats.dropped_too_large += 1
                    stats.once("large", "cluster: a message of %d bytes with its headers is "
                               "over NATS's max_payload (%d): delivered on this node only",
                               len(payload), limit)
                    continue
                await nc.publish(subject, payload, headers=headers)
            except nats.errors.Error as exc:
                stats.dropped_send_failed += 1
                stats.once("send", "cluster: NATS refused a message: %s", exc)
            except Exception:
                # A bug must not end the node's task group: drop the message, say why.
                stats.dropped_send_failed += 1
                log.exception("cluster: cannot send a message on %s", subject)

    # -- Incoming -------------------------------------------------------------------

    async def _received(self, feed: Feed, msg: Msg) -> None:
        engine = self._engine
        assert engine is not None
        try:
            topic = self._topic(msg.subject)
            message = message_from(topic, msg.data, msg.headers, engine.clock.monotonic())
        except ValueError as exc:
            self.stats.dropped_malformed += 1
            self.stats.once("malformed", "cluster: dropped a NATS message on %s: %s",
                            msg.subject, exc)
            return
        exclude = source_on(msg.headers, self.node_id) if feed.queue else None
        try:
            engine.publish(message, feed if exclude is None else feed.excluding(exclude))
        except Exception:
            log.exception("cluster: routing a message from %s failed", msg.subject)

    # -- Subscriptions --------------------------------------------------------------

    async def _subscriber(self) -> None:
        ready = self._changes_ready
        while True:
            await ready.wait()
            ready.clear()
            await self._apply_changes()

    async def _apply_changes(self) -> None:
        """Subscribe and unsubscribe as the router asked, in its order."""
        changes = self._changes
        while changes:
            add, feed = changes.popleft()
            nc = self.groups if feed.queue else self.main
            try:
                if add:
                    callback = partial(self._received, feed)
                    self._subs[feed] = [await nc.subscribe(subject, feed.queue, callback)
                                        for subject in feed.subjects]
                else:
                    for sub in self._subs.pop(feed, ()):
                        await sub.unsubscribe()
            except Exception as exc:
                # nats.errors.Error (connection closed, draining) or a bug: neither may
                # end the node's task group.
                log.warning("cluster: NATS %s of %r failed: %r",
                            "subscription" if add else "unsubscription", feed.topic_filter,
                            exc)
