"""The session registry: attach on CONNECT (with takeover), detach on close, wills and
session expiry (3.1.2.5, 3.1.3.2.2, 3.1.2.11.2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from roost.engine.clock import Clock
from roost.engine.events import SessionEnded, SessionOpened
from roost.engine.hooks import HookRegistry
from roost.engine.message import Message
from roost.engine.persistence import Converter, SessionJournal
from roost.engine.records import StoredSession
from roost.engine.router import Router
from roost.engine.session import Delivery, Inflight, Outlet, Session
from roost.engine.store import Store
from roost.mqtt.packets import Will

if TYPE_CHECKING:
    from roost.engine.settings import EngineSettings
    from roost.engine.stats import Stats

log = logging.getLogger("roost.sessions")


class Census(NamedTuple):
    sessions: int
    online: int
    queued: int
    inflight: int


class SessionRegistry:
    def __init__(self, clock: Clock, router: Router, settings: EngineSettings, stats: Stats,
                 publish: Callable[[Message], int], store: Store,
                 converter: Converter, hooks: HookRegistry | None = None) -> None:
        self._store = store
        self._hooks = hooks or HookRegistry()
        self._converter = converter
        self._clock = clock
        self._router = router
        self._settings = settings
        self._stats = stats
        self._publish = publish
        self.sessions: dict[str, Session] = {}

    def commit(self, callback: Callable[[bool], None]) -> None:
        """Call back once every session change recorded so far is durable
        (``Store.commit``)."""
        self._store.commit(callback)

    def get(self, client_id: str) -> Session | None:
        return self.sessions.get(client_id)

    def census(self) -> Census:
        """Sessions, online ones, and their queued and in-flight messages, in one pass
        (for metrics and $SYS)."""
        online = queued = inflight = 0
        for s in self.sessions.values():
            online += s.outlet is not None
            queued += len(s.queue)
            inflight += len(s.inflight)
        return Census(len(self.sessions), online, queued, inflight)

    def outlets(self) -> list[Outlet]:
        """The connections of the sessions that are online now."""
        return [s.outlet for s in self.sessions.values() if s.outlet is not None]

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
            self._set_persistence(existing)
            self._hooks.emit(SessionOpened(client_id, True, expiry_interval))
            return existing, True
        session = self._new_session(client_id, expiry_interval)
        self._set_persistence(session)
        self._hooks.emit(SessionOpened(client_id, False, expiry_interval))
        return session, False

    def _new_session(self, client_id: str, expiry_interval: int | None) -> Session:
        session = Session(client_id, expiry_interval, self._settings.max_queued_messages,
                          self._settings.queue_qos0, self._stats,
                          max_queued_bytes=self._settings.max_queued_bytes,
                          hooks=self._hooks)
        self.sessions[client_id] = session
        return session

    def _set_persistence(self, session: Session) -> None:
        """Store a session that outlives its connection; forget one that does not."""
        if session.expiry_interval == 0:
            if session.journal is not None:
                self._store.session_delete(session.client_id)
                session.journal = None
            return
        first = session.journal is None
        if first:
            session.journal = SessionJournal(self._store, self._converter, session.client_id)
        self._save(session)
        if first:
            # A session that just became persistent stores what it already holds.
            journal = session.journal
            assert journal is not None
            for sub in session.subscriptions.values():
                journal.subscribed(sub)

    def _save(self, session: Session, disconnected: bool = False,
              will_delay: float | None = None) -> None:
        now = self._clock.wall()
        will = session.pending_will
        self._store.session_save(StoredSession(
            session.client_id, session.expiry_interval, now if disconnected else None,
            will=self._converter.will_out(will) if will is not None else None,
            will_due_at=now + will_delay if will is not None and will_delay else None))

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
            return
        if session.journal is not None:
            self._save(session, disconnected=True,
                       will_delay=(session.pending_will.properties.will_delay_interval
                                   if session.pending_will is not None else None))
            # Written now, not whenever the next acknowledgement asks for a commit: an
            # idle broker killed meanwhile would lose the delayed will and the time the
            # client went offline (from which the session's expiry counts).
            self._store.commit(_ignore)
        if expiry is not None:
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
        subscriptions and queued messages are dropped, except that QoS 1/2 messages
        it had through shared subscriptions and the client has not received go back
        to their group for another member (4.8.2); see ``_hand_back``."""
        session.cancel_timers()
        will, session.pending_will = session.pending_will, None
        if will is not None:
            self._publish_will(session.client_id, will)
        # Unsubscribed first, so that the group cannot choose this session again.
        for sub in session.subscriptions.values():
            self._router.unsubscribe(session, sub)
        session.subscriptions.clear()
        unfinished = session.unfinished_shared()
        session.queue.clear()
        session.queued_bytes = 0
        session.inflight.clear()
        if session.journal is not None:
            self._store.session_delete(session.client_id)
            session.journal = None
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        self._hooks.emit(SessionEnded(session.client_id))
        if unfinished:
            self._hand_back(session.client_id, unfinished)

    def _hand_back(self, client_id: str, deliveries: list[Delivery]) -> None:
        """Send a finished session's unreceived shared messages to other members of
        their groups, through the router (a group's members may be on other nodes).

        "If the Server Session terminates before [the Client] reconnects, the Server
        SHOULD send the Application Message to another Client that is subscribed to
        the same Shared Subscription" (MQTT 5 4.8.2). Each is a new delivery to the
        member that gets it (DUP 0: that member never had it); a message whose group
        has no members left is dropped and counted (``dropped_no_share_member``).
        """
        stats = self._stats
        lost = 0
        for delivery in deliveries:
            assert delivery.share is not None
            if self._router.redispatch(delivery.share, delivery.message):
                stats.shared_redispatched += 1
            else:
                lost += 1
        if lost:
            stats.dropped_no_share_member += lost
            log.info("session %r ended: %d shared messages dropped, their groups have "
                     "no members left", client_id, lost)

    def restore(self, stored: list[StoredSession]) -> int:
        """Rebuild sessions from the store at start-up; expired ones end now.

        A session's expiry counts from when its client went offline, in wall-clock
        time, so time spent while the broker was down counts too. A session whose
        client was connected when the broker stopped counts from now.
        """
        now = self._clock.wall()
        resumed = 0
        for s in stored:
            offline_since = s.disconnected_at if s.disconnected_at is not None else now
            elapsed = max(0.0, now - offline_since)
            if s.expiry_interval is not None and elapsed >= s.expiry_interval:
                log.info("session %r expired while the broker was down", s.client_id)
                if s.will is not None:
                    self._publish_will(s.client_id, self._converter.will_in(s.will))
                self._store.session_delete(s.client_id)
                continue
            session = self._new_session(s.client_id, s.expiry_interval)
            session.journal = SessionJournal(self._store, self._converter, s.client_id)
            for stored_sub in s.subscriptions:
                sub = self._converter.subscription_in(stored_sub)
                session.subscriptions[sub.topic_filter] = sub
                self._router.subscribe(session, sub)
            for d in s.deliveries:
                delivery = self._converter.delivery_in(d)
                if d.state in ("publish", "pubrel") and d.packet_id:
                    session.inflight[d.packet_id] = Inflight(delivery, d.state)
                    session.next_packet_id = d.packet_id % 65535 + 1
                else:
                    session.queue.append(delivery)
                    session.queued_bytes += len(delivery.message.payload) + len(
                        delivery.message.topic)
                session.next_seq = max(session.next_seq, d.seq + 1)
            session.awaiting_pubrel.update(dict.fromkeys(s.awaiting_pubrel))
            if s.will is not None:
                will = self._converter.will_in(s.will)
                due = (s.will_due_at - now) if s.will_due_at is not None else 0
                if due <= 0:
                    self._publish_will(s.client_id, will)
                else:
                    session.pending_will = will
                    session.will_timer = self._clock.call_later(
                        due, partial(self._will_due, session))
            if s.disconnected_at is None:
                self._save(session, disconnected=True)
            if s.expiry_interval is not None:
                session.expiry_timer = self._clock.call_later(
                    s.expiry_interval - elapsed,
                    partial(self._expired, session))
            resumed += 1
        return resumed

    def _publish_will(self, client_id: str, will: Will) -> None:
        self._publish(Message.from_will(will, client_id, self._clock.monotonic()))


def _ignore(committed: bool) -> None:
    """A commit nobody waits for; a failure is the store's to report (it logs it and
    turns unhealthy) and to retry."""
