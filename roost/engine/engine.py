"""The engine: wiring of router, sessions, retained messages, store and hooks.

It is deliberately thin; the protocol rules live in ``channel.py`` (one connection)
and the session rules in ``session.py`` and ``sessions.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from roost.engine.clock import Clock
from roost.engine.hooks import Authenticator, Authorizer
from roost.engine.message import Message
from roost.engine.persistence import Converter
from roost.engine.retained import RetainedMessages
from roost.engine.router import LocalRouter, Router
from roost.engine.sessions import SessionRegistry
from roost.engine.settings import EngineSettings
from roost.engine.stats import Stats
from roost.engine.store import MemoryStore, Store

log = logging.getLogger("roost.engine")


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
        self.sessions = SessionRegistry(clock, self.router, self.settings, self.stats,
                                        self.publish, self.store, self.converter)
        self.authenticators = list(authenticators)
        self.authorizers = list(authorizers)

    def restore(self) -> int:
        """Bring back the sessions the store holds; return how many were resumed."""
        return self.sessions.restore(self.store.sessions_load())

    def publish(self, message: Message) -> int:
        """Route a message (updating retained state first); return its receivers."""
        if message.retain and self.settings.retain_available:
            self.retained.update(message)
        return self.router.route(message)
