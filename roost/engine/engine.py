"""The engine: wiring of router, sessions, retained messages, store and hooks.

It is deliberately thin; the protocol rules live in ``channel.py`` (one connection)
and the session rules in ``session.py`` and ``sessions.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from roost.engine import eventlog
from roost.engine.clock import Clock
from roost.engine.directory import LocalSessionDirectory, SessionDirectory
from roost.engine.events import MessagePublished
from roost.engine.hooks import (
    AccessEvent,
    Action,
    Authenticator,
    Authorizer,
    Decision,
    DeferredAuthenticator,
    HookRegistry,
)
from roost.engine.link import FlowSource
from roost.engine.message import Message, Origin
from roost.engine.persistence import Converter
from roost.engine.retained import Retained, RetainedMessages
from roost.engine.router import LocalRouter, Router
from roost.engine.session import Session
from roost.engine.sessions import SessionRegistry
from roost.engine.settings import EngineSettings
from roost.engine.stats import Stats
from roost.engine.store import BulkLoad, MemoryStore, Store
from roost.engine.subscriptions import Subscriber
from roost.engine.wheel import TimerWheel

log = logging.getLogger("roost.engine")
# Bounds of Engine.valid_topics: entries, and the longest name kept (in characters).
_CACHED_TOPICS = 10_000
_CACHED_TOPIC_MAX = 256


class Engine:
    def __init__(self, clock: Clock, settings: EngineSettings | None = None,
                 store: Store | None = None, router: Router | None = None,
                 authenticators: Sequence[Authenticator | DeferredAuthenticator] = (),
                 authorizers: Sequence[Authorizer] = (),
                 retained: Retained | None = None) -> None:
        self.clock = clock
        self.settings = settings or EngineSettings()
        self.store: Store = store or MemoryStore()
        self.router: Router = router or LocalRouter()
        self.stats = Stats()
        self.converter = Converter(clock)
        self.retained: Retained = retained or RetainedMessages(self.store, self.converter)
        # Every connection's keepalive and connect timeout: one loop timer for all.
        self.wheel = TimerWheel(clock)
        # Authentication and authorization chains and event listeners, in one place.
        self.hooks = HookRegistry(authenticators, authorizers)
        eventlog.install(self.hooks)
        self.sessions = SessionRegistry(clock, self.router, self.settings, self.stats,
                                        self.publish, self.store, self.converter,
                                        self.hooks)
        # Where a CONNECT finds its session; a cluster replaces it with its own.
        self.directory: SessionDirectory = LocalSessionDirectory(self.sessions)
        # Topic names recently found valid and within limits, so a stream of messages
        # to the same topics checks each once (bounded; short names only).
        self.valid_topics: dict[str, None] = {}

    def restore(self) -> int:
        """Bring back the sessions the store holds; return how many were resumed."""
        if not isinstance(self.store, BulkLoad):
            return 0  # a cluster store: sessions are read per client (session_load)
        return self.sessions.restore(self.store.sessions_load())

    def topic_checked(self, topic: str) -> None:
        """Remember that ``topic`` passed the topic-name checks."""
        if len(topic) > _CACHED_TOPIC_MAX:
            return
        if len(self.valid_topics) >= _CACHED_TOPICS:
            self.valid_topics.clear()
        self.valid_topics[topic] = None

    def publish(self, message: Message, source: Subscriber | None = None,
                flow: FlowSource | None = None) -> int:
        """The one way into routing, for every message: clients' PUBLISHes, wills,
        $SYS values, and (later) messages from other nodes and bridges.

        Updates the retained messages first when the retain flag is set ($SYS values
        in memory only, never stored), then routes. Returns how many receivers it went
        to (0: nobody; a shared group counts once). ``source`` is the subscriber the
        message came in through (a backplane or a bridge), which never gets it back.
        ``flow`` is what to hold back if a receiver cannot keep up (the publishing
        client's link), passed down to each receiver's connection.
        """
        if message.retain:
            if message.origin_kind is Origin.SYS:
                self.retained.update(message, persist=False)
            elif self.settings.retain_available:
                self.retained.update(message)
        receivers = self.router.route(message, source, flow)
        if self.hooks.message_events:
            self.hooks.emit(MessagePublished(message, receivers))
        return receivers

    # -- Access checks tied to a session's owner ------------------------------------

    def read_check(self, client_id: str, username: str | None) -> Callable[[str], bool] | None:
        """Whether this client may read a topic, per message; None without authorizers."""
        hooks = self.hooks
        if not hooks.authorizers:
            return None

        def may_read(topic: str) -> bool:
            event = AccessEvent(client_id, username, Action.READ, topic)
            return hooks.authorize(event) is not Decision.DENY

        return may_read

    def identify(self, session: Session, username: str | None) -> int:
        """Record who owns ``session`` (at CONNECT) and apply the access rules to what it
        already holds: subscriptions and queued messages it may no longer have are
        dropped (the owner, or the rules, may have changed since). Returns how many
        subscriptions were removed."""
        session.username = username
        session.identified = True
        session.read_check = self.read_check(session.client_id, username)
        removed = self._reauthorize(session)
        dropped = session.drop_unreadable()
        if dropped:
            log.info("session %r: %d queued messages dropped, no longer readable",
                     session.client_id, dropped)
        return removed

    def reload_acl(self, authorizers: Sequence[Authorizer] | None = None) -> int:
        """Apply changed access rules to every session: replace the authorizers (when
        given; otherwise they reloaded their own rules), then re-check every
        subscription and remove those now denied. Returns how many were removed.

        Sessions restored from the store whose client has not connected yet are
        checked when it does (their owner is not known before)."""
        if authorizers is not None:
            self.hooks.authorizers = list(authorizers)
        removed = 0
        for session in list(self.sessions.sessions.values()):
            if session.identified:
                session.read_check = self.read_check(session.client_id, session.username)
                removed += self._reauthorize(session)
                session.drop_unreadable()
        return removed

    def _reauthorize(self, session: Session) -> int:
        if not self.hooks.authorizers or not session.subscriptions:
            return 0
        removed = 0
        for sub in list(session.subscriptions.values()):
            event = AccessEvent(session.client_id, session.username, Action.SUBSCRIBE,
                                sub.topic_filter)
            if self.hooks.authorize(event) is Decision.DENY:
                session.unsubscribed(sub.topic_filter)
                self.router.unsubscribe(session, sub)
                log.info("session %r: subscription %r removed, no longer authorized",
                         session.client_id, sub.topic_filter)
                removed += 1
        return removed
