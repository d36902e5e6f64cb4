"""One client connection: the MQTT protocol state machine between a Link and the engine.

Bytes come in through ``data_received``; packets go out through the link. This module
holds the connection's states, the dispatch of packets to their handlers, keepalive and
closing. The handlers live beside it, written against the narrow ``Connection``
protocol: CONNECT in ``handle_connect.py``, SUBSCRIBE/UNSUBSCRIBE in
``handle_subscribe.py``, PUBLISH and its acknowledgements in ``handle_publish.py``;
outbound PUBLISH encoding is in ``outbound.py``. Every protocol violation ends in
``_fail``, the one place that turns an error into a DISCONNECT reason code (5.0) or a
plain close (3.x); refusals that do not end the connection are answered through
``outcomes.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

from roost.engine import handle_publish, outbound
from roost.engine.clock import Timer
from roost.engine.connection import UNLIMITED_PACKET
from roost.engine.engine import Engine
from roost.engine.events import ClientDisconnected
from roost.engine.handle_connect import NEVER_EXPIRES, handle_connect
from roost.engine.handle_subscribe import handle_subscribe, handle_unsubscribe
from roost.engine.limits import LimitExceeded, user_properties_over_limit
from roost.engine.link import Link
from roost.engine.outcomes import Outcome, answer
from roost.engine.session import Session
from roost.mqtt.decoder import Decoder
from roost.mqtt.encoder import encode
from roost.mqtt.errors import PacketTooLarge, ProtocolViolation, UnsupportedProtocolVersion
from roost.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingresp,
    Publish,
    Pubrel,
    Will,
)
from roost.mqtt.properties import Properties
from roost.mqtt.reason_codes import ReasonCode

log = logging.getLogger("roost.connection")


class State(Enum):
    AWAIT_CONNECT = 1
    # CONNECT received and being authenticated and opened (the session directory's
    # answer is awaited); what the client sends meanwhile is held until the CONNACK.
    CONNECTING = 2
    CONNECTED = 3
    CLOSED = 4


# Bytes a client may send between its CONNECT and our CONNACK (MQTT 5 lets it pipeline);
# more closes the connection. Beside max_packet_size, which bounds a single packet.
HELD_INPUT_LIMIT = 1_048_576


class Channel:
    """Protocol state for one connection; also the session's outlet while online."""

    # One per connection: slots keep an idle connection small.
    __slots__ = ("engine", "link", "settings", "state", "decoder", "level", "client_id",
                 "username", "session", "will", "keepalive", "last_received",
                 "client_receive_maximum", "client_max_packet", "client_alias_maximum",
                 "alias_out", "alias_in", "disconnect_reason", "_logged_limits", "_timer",
                 "connected_at", "_held", "_held_bytes")

    def __init__(self, engine: Engine, link: Link) -> None:
        self.engine = engine
        self.link = link
        self.settings = engine.settings
        self.state = State.AWAIT_CONNECT
        self.decoder = Decoder(max_packet_size=self.settings.max_packet_size)
        self.level = 4
        self.client_id = ""
        self.username: str | None = None
        self.session: Session | None = None
        self.will: Will | None = None
        self.keepalive = 0
        self.last_received = engine.clock.monotonic()
        # What the client told us it can take (5.0 CONNECT properties).
        self.client_receive_maximum = 65535
        self.client_max_packet = UNLIMITED_PACKET
        self.client_alias_maximum = 0
        # Topic aliases (5.0), made when first used: most clients use none.
        self.alias_out: dict[str, int] | None = None
        self.alias_in: dict[int, str] | None = None
        self.disconnect_reason: str | None = None
        # Limits already logged for this connection (made on the first breach).
        self._logged_limits: set[str] | None = None
        self._timer: Timer | None = engine.wheel.call_later(
            self.settings.connect_timeout, self._connect_timed_out)
        engine.stats.connections_total += 1
        # Wall-clock time the connection was accepted (for the admin API).
        self.connected_at = engine.clock.wall()
        # While CONNECTING: packets (and a violation that ends them) held for after the
        # CONNACK, and the bytes they came in.
        self._held: list[Packet | ProtocolViolation] | None = None
        self._held_bytes = 0

    # -- Input -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        self.engine.stats.bytes_received += len(data)
        state = self.state
        if state is State.AWAIT_CONNECT and not self.decoder.buffered and data[0] != 0x10:
            # Whatever this is (HTTP, TLS, noise), it is not a CONNECT: close now rather
            # than wait for the body it seems to declare.
            self._fail(ProtocolViolation(f"first packet is not CONNECT (byte 0x{data[0]:02x})"))
            return
        violation = None
        try:
            packets = self.decoder.feed(data)
        except ProtocolViolation as exc:
            packets = exc.preceding  # type: ignore[assignment]
            violation = exc
        if packets:
            # Keepalive counts whole control packets (3.1.2.10), so a peer trickling
            # the bytes of a packet it never finishes still times out.
            self.last_received = self.engine.clock.monotonic()
        if state is not State.CONNECTED or violation is not None:
            if state is State.CONNECTING:
                self._hold(packets, violation, len(data))
            else:
                self._dispatch(packets, violation)
            return
        for packet in packets:
            try:
                if type(packet) is Publish:
                    self._on_publish(packet)  # the hot path, one call deep
                else:
                    self._handle(packet)
            except ProtocolViolation as exc:
                self._fail(exc)
            if self.state is State.CLOSED:
                return

    def _dispatch(self, packets: list[Packet], violation: ProtocolViolation | None) -> None:
        """Handle ``packets`` in order, then ``violation``; the ones that follow a
        CONNECT still being answered are held for after its CONNACK."""
        for i, packet in enumerate(packets):
            if self.state is State.CONNECTING:
                self._hold(packets[i:], violation, 0)
                return
            try:
                self._handle(packet)
            except ProtocolViolation as exc:
                self._fail(exc)
            if self.state is State.CLOSED:
                return
        if violation is None:
            return
        if self.state is State.CONNECTING:
            self._hold([], violation, 0)
        else:
            self._fail(violation)

    def _hold(self, packets: list[Packet], violation: ProtocolViolation | None,
              size: int) -> None:
        held = self._held
        assert held is not None
        held.extend(packets)
        if violation is not None:
            held.append(violation)
        self._held_bytes += size
        if self._held_bytes > HELD_INPUT_LIMIT:
            self.close(self.breach("held_input", f"more than {HELD_INPUT_LIMIT} bytes "
                                   "sent before the CONNACK"))

    def hold_input(self) -> None:
        """CONNECT taken: until ``release_input``, hold what the client sends."""
        self.state = State.CONNECTING
        self._held = []

    def release_input(self) -> None:
        """CONNACK sent: handle, in order, what the client sent since its CONNECT."""
        held, self._held = self._held, None
        self._held_bytes = 0
        if not held:
            return
        violation = held.pop() if isinstance(held[-1], ProtocolViolation) else None
        self._dispatch(held, violation)  # type: ignore[arg-type]

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def _handle(self, packet: Packet) -> None:
        if self.state is State.AWAIT_CONNECT:
            if not isinstance(packet, Connect):
                raise ProtocolViolation("first packet is not CONNECT")
            handle_connect(self, packet)
            return
        if type(packet) is Publish:
            self._on_publish(packet)  # no entry in _handlers: it checks its own properties
            return
        handler = self._handlers.get(packet.type)
        if handler is None:
            raise ProtocolViolation(f"a client may not send {packet.type.name}")
        props = getattr(packet, "properties", None)
        if props is not None and props.user_properties:
            over = user_properties_over_limit(self.settings, props)
            if over is not None:
                raise LimitExceeded("max_user_properties", over, ReasonCode.QUOTA_EXCEEDED)
        handler(self, packet)

    # -- Errors and closing -------------------------------------------------------

    def _fail(self, exc: ProtocolViolation) -> None:
        """The single place where a violation becomes what the client sees."""
        if isinstance(exc, LimitExceeded):
            text = self.breach(exc.limit, str(exc))
        elif isinstance(exc, PacketTooLarge):
            text = self.breach("max_packet_size", str(exc))
        else:
            self.engine.stats.protocol_errors += 1
            text = str(exc)
        log.info("closing %s (%s): %s", self.client_id or "-", self.link.peer, text)
        if self.state in (State.AWAIT_CONNECT, State.CONNECTING):
            if isinstance(exc, UnsupportedProtocolVersion):
                # The client's level is unknown, so answer in the 3.1.1 format (3.1.2.2).
                self.link.write(encode(Connack(ReasonCode.UNSUPPORTED_PROTOCOL_VERSION), 4))
            self.close(str(exc))
            return
        self.disconnect(exc.reason, str(exc))

    def breach(self, limit: str, detail: str) -> str:
        """Count a breach of ``limit``; return the text to log (once) about it."""
        count = self.engine.stats.breach(limit)
        return f"limit {limit} exceeded: {detail} (breach {count} of {limit})"

    def breach_once(self, limit: str, detail: str) -> None:
        """Count a breach that does not close the connection; log only its first."""
        text = self.breach(limit, detail)
        logged = self._logged_limits
        if logged is None:
            logged = self._logged_limits = set()
        if limit not in logged:
            logged.add(limit)
            log.info("%s (%s): %s; further breaches by this connection are counted, "
                     "not logged", self.client_id or "-", self.link.peer, text)

    def disconnect(self, reason: ReasonCode, why: str | None = None,
                   properties: Properties | None = None) -> None:
        """Server-initiated close: DISCONNECT with ``reason`` for 5.0, then close."""
        if self.state is State.CLOSED:
            return
        if self.level == 5 and self.state is State.CONNECTED:
            self.send(Disconnect(reason, properties or Properties()))
        self.close(why or reason.name.lower())

    def close(self, why: str) -> None:
        if self.state is State.CLOSED:
            return
        self.disconnect_reason = why
        self.link.close()
        self.connection_lost()

    def connection_lost(self) -> None:
        """The transport is gone (or we closed it): hand the session back."""
        if self.state is State.CLOSED and self.session is None:
            return
        was_connected = self.state is State.CONNECTED
        self.state = State.CLOSED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        session, self.session = self.session, None
        if was_connected and session is not None and session.outlet is self:
            self.engine.hooks.emit(ClientDisconnected(
                self.client_id, self.link.peer, self.link.listener, self.level,
                self.disconnect_reason or "connection lost"))
            self.engine.directory.closed(session, self.will)
        self.will = None
        self._held = None

    def _connect_timed_out(self) -> None:
        self._timer = None
        if self.state in (State.AWAIT_CONNECT, State.CONNECTING):
            what = "CONNECT" if self.state is State.AWAIT_CONNECT else "CONNACK (CONNECT " \
                "still being authenticated or its session opened)"
            why = self.breach("connect_timeout",
                              f"no {what} within {self.settings.connect_timeout:g} s")
            log.info("closing - (%s): %s", self.link.peer, why)
            self.close(why)

    def _keepalive_check(self) -> None:
        self._timer = None
        if self.state is not State.CONNECTED:
            return
        limit = self.keepalive * 1.5
        idle = self.engine.clock.monotonic() - self.last_received
        if idle >= limit:
            self.disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT, self.breach(
                "keepalive", f"no packet for {idle:.1f} s, keepalive {self.keepalive} s"))
        else:
            self._timer = self.engine.wheel.call_later(limit - idle, self._keepalive_check)

    # -- Output ------------------------------------------------------------------

    def send(self, packet: Packet) -> None:
        data = encode(packet, self.level)
        self.engine.stats.bytes_sent += len(data)
        self.link.write(data)

    @property
    def send_window(self) -> int:
        return min(self.client_receive_maximum, self.settings.max_inflight)

    # The session's Outlet method, one call deep on the hot path (roost/engine/outbound.py).
    send_delivery = outbound.send_delivery

    def send_pubrel(self, packet_id: int) -> None:
        self.send(Pubrel(packet_id))

    def enter_connected(self, session: Session, will: Will | None, keepalive: int) -> None:
        """CONNECT accepted: hold the session, arm the keepalive instead of the connect
        timeout."""
        self.session = session
        self.will = will
        self.keepalive = keepalive
        self.state = State.CONNECTED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if keepalive:
            self._timer = self.engine.wheel.call_later(keepalive * 1.5, self._keepalive_check)

    # -- PUBLISH and its acknowledgements (roost/engine/handle_publish.py) -----------

    _on_publish = handle_publish.on_publish

    def session_or_fail(self) -> Session:
        if self.session is None:
            raise ProtocolViolation("no session")
        return self.session

    def send_when_stored(self, packet: Packet) -> None:
        """Send once the session's changes so far are durable (at once for a session
        that is not stored); all such packets keep their order."""
        session = self.session
        if session is None or session.journal is None:
            self.send(packet)
            return
        self.engine.store.commit(lambda ok: self._stored(session, packet, ok))

    def _stored(self, session: Session, packet: Packet, committed: bool) -> None:
        if self.state is not State.CONNECTED or self.session is not session:
            return
        if not committed:
            self.store_failed(packet.type)  # PUBREL and PUBCOMP cannot say it: the end
            return
        self.send(packet)

    def store_failed(self, packet_type: PacketType) -> ReasonCode | None:
        """A commit that the answer ``packet_type`` waited for failed: return the
        reason code that answer must carry instead, or end the connection and return
        None where it cannot carry one (outcomes.py)."""
        refusal = answer(Outcome.STORE_FAILURE, packet_type, self.level)
        if refusal.end:
            self.disconnect(refusal.code, Outcome.STORE_FAILURE.value)
            return None
        return refusal.code

    # -- The rest -----------------------------------------------------------------

    def _on_pingreq(self, p: Packet) -> None:
        self.send(Pingresp())

    def _on_disconnect(self, p: Disconnect) -> None:
        session = self.session_or_fail()
        expiry = p.properties.session_expiry_interval
        if expiry is not None:
            if session.expiry_interval == 0 and expiry != 0:
                raise ProtocolViolation("session expiry set on DISCONNECT after 0 at CONNECT")
            session.expiry_interval = None if expiry == NEVER_EXPIRES else expiry
        if p.reason_code != ReasonCode.DISCONNECT_WITH_WILL:
            self.will = None
        self.close(f"client disconnected ({p.reason_code.name.lower()})")

    def _on_auth(self, p: Auth) -> None:
        raise ProtocolViolation("AUTH without an authentication method")

    _handlers: dict[int, Callable[[Channel, Any], None]] = {
        PacketType.PUBACK: handle_publish.on_puback,
        PacketType.PUBREC: handle_publish.on_pubrec,
        PacketType.PUBREL: handle_publish.on_pubrel,
        PacketType.PUBCOMP: handle_publish.on_pubcomp,
        PacketType.SUBSCRIBE: handle_subscribe,
        PacketType.UNSUBSCRIBE: handle_unsubscribe,
        PacketType.PINGREQ: _on_pingreq,
        PacketType.DISCONNECT: _on_disconnect,
        PacketType.AUTH: _on_auth,
        PacketType.CONNECT: lambda self, p: self._second_connect(),
    }

    def _second_connect(self) -> None:
        raise ProtocolViolation("second CONNECT")
