"""The session registry: attach on CONNECT (with takeover), detach on close, wills and
session expiry (3.1.2.5, 3.1.3.2.2, 3.1.2.11.2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from roost.engine.clock import Clock
from roost.engine.message import Message
from roost.engine.router import Router
from roost.engine.session import Session
from roost.mqtt.packets import Will

if TYPE_CHECKING:
    from roost.engine.settings import EngineSettings
    from roost.engine.stats import Stats

log = logging.getLogger("roost.sessions")


class SessionRegistry:
    def __init__(self, clock: Clock, router: Router, settings: EngineSettings, stats: Stats,
                 publish: Callable[[Message], int]) -> None:
        self._clock = clock
        self._router = router
        self._settings = settings
        self._stats = stats
        self._publish = publish
        self.sessions: dict[str, Session] = {}

    def get(self, client_id: str) -> Session | None:
        return self.sessions.get(client_id)

    @property
    def online_count(self) -> int:
        return sum(1 for s in self.sessions.values() if s.online)

    def open(self, client_id: str, clean_start: bool,
             expiry_interval: int | None) -> tuple[Session, bool]:
        """The session for a new connection, and whether an existing one was resumed.

        The caller must already have closed any connection still using ``client_id``.
        """
        existing = self.sessions.get(client_id)
        if existing is not None and clean_start:
            self.end(existing)
            existing = None
        if existing is not None:
            existing.cancel_timers()
            # Reconnecting before the will delay elapsed cancels the will (3.1.3.2.2).
            existing.pending_will = None
            existing.expiry_interval = expiry_interval
            return existing, True
        session = Session(client_id, expiry_interval, self._settings.max_queued_messages,
                          self._settings.queue_qos0, self._stats)
        self.sessions[client_id] = session
        return session, False

    def closed(self, session: Session, will: Will | None) -> None:
        """The session's connection is gone; ``will`` is set if it must be published."""
        session.outlet = None
        expiry = session.expiry_interval
        if will is not None:
            delay = will.properties.will_delay_interval or 0
            if expiry is not None:
                delay = min(delay, expiry)
            if delay <= 0:
                self._publish_will(session.client_id, will)
            else:
                session.pending_will = will
                session.will_timer = self._clock.call_later(
                    delay, lambda: self._will_due(session))
        if expiry == 0:
            self.end(session)
        elif expiry is not None:
            session.expiry_timer = self._clock.call_later(expiry, lambda: self._expired(session))

    def _will_due(self, session: Session) -> None:
        session.will_timer = None
        will, session.pending_will = session.pending_will, None
        if will is not None and not session.online:
            self._publish_will(session.client_id, will)

    def _expired(self, session: Session) -> None:
        session.expiry_timer = None
        if not session.online and self.sessions.get(session.client_id) is session:
            log.info("session %r expired", session.client_id)
            self.end(session)

    def end(self, session: Session) -> None:
        """Discard a session: its will (if still pending) is published, its
        subscriptions and queued messages are dropped."""
        session.cancel_timers()
        will, session.pending_will = session.pending_will, None
        if will is not None:
            self._publish_will(session.client_id, will)
        for sub in session.subscriptions.values():
            self._router.unsubscribe(session, sub)
        session.subscriptions.clear()
        session.queue.clear()
        session.inflight.clear()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def _publish_will(self, client_id: str, will: Will) -> None:
        self._publish(Message.from_will(will, client_id, self._clock.monotonic()))
