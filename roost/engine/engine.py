"""The engine: wiring of router, sessions, retained messages, store and hooks.

It is deliberately thin; the protocol rules live in ``channel.py`` (one connection)
and the session rules in ``session.py`` and ``sessions.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from roost.engine.clock import Clock
from roost.engine.hooks import AccessEvent, Action, Authenticator, Authorizer, Decision, authorize
from roost.engine.link import Link
from roost.engine.message import Message
from roost.engine.persistence import Converter
from roost.engine.retained import RetainedMessages
from roost.engine.router import LocalRouter, Router
from roost.engine.session import Session
from roost.engine.sessions import SessionRegistry
from roost.engine.settings import EngineSettings
from roost.engine.stats import Stats
from roost.engine.store import BulkLoad, MemoryStore, Store
from roost.engine.wheel import TimerWheel

log = logging.getLogger("roost.engine")
# Bounds of Engine.valid_topics: entries, and the longest name kept (in characters).
_CACHED_TOPICS = 10_000
_CACHED_TOPIC_MAX = 256


class Engine:
    def __init__(self, clock: Clock, settings: EngineSettings | None = None,
                 store: Store | None = None, router: Router | None = None,
                 authenticators: Sequence[Authenticator] = (),
                 authorizers: Sequence[Authorizer] = ()) -> None:
        self.clock = clock
        self.settings = settings or EngineSettings()
        self.store: Store = store or MemoryStore()
        self.router: Router = router or LocalRouter()
        self.stats = Stats()
        self.converter = Converter(clock)
        self.retained = RetainedMessages(self.store, self.converter)
        # Every connection's keepalive and connect timeout: one loop timer for all.
        self.wheel = TimerWheel(clock)
        self.sessions = SessionRegistry(clock, self.router, self.settings, self.stats,
                                        self.publish, self.store, self.converter)
        self.authenticators = list(authenticators)
        # The link whose input is being handled now: the publisher of what is routed.
        self.publishing: Link | None = None
        self.authorizers = list(authorizers)
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

    def publish(self, message: Message) -> int:
        """Route a message (updating retained state first); return its receivers."""
        if message.retain and self.settings.retain_available:
            self.retained.update(message)
        return self.router.route(message)

    # -- Access checks tied to a session's owner ------------------------------------

    def read_check(self, client_id: str, username: str | None) -> Callable[[str], bool] | None:
        """Whether this client may read a topic, per message; None without authorizers."""
        if not self.authorizers:
            return None
        authorizers = self.authorizers

        def may_read(topic: str) -> bool:
            event = AccessEvent(client_id, username, Action.READ, topic)
            return authorize(authorizers, event) is not Decision.DENY

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
            self.authorizers = list(authorizers)
        removed = 0
        for session in list(self.sessions.sessions.values()):
            if session.identified:
                session.read_check = self.read_check(session.client_id, session.username)
                removed += self._reauthorize(session)
                session.drop_unreadable()
        return removed

    def _reauthorize(self, session: Session) -> int:
        if not self.authorizers or not session.subscriptions:
            return 0
        removed = 0
        for sub in list(session.subscriptions.values()):
            event = AccessEvent(session.client_id, session.username, Action.SUBSCRIBE,
                                sub.topic_filter)
            if authorize(self.authorizers, event) is Decision.DENY:
                session.unsubscribed(sub.topic_filter)
                self.router.unsubscribe(session, sub)
                log.info("session %r: subscription %r removed, no longer authorized",
                         session.client_id, sub.topic_filter)
                removed += 1
        return removed
