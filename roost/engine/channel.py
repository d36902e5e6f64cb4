"""One client connection: the MQTT protocol state machine between a Link and the engine.

Bytes come in through ``data_received``; packets go out through the link. CONNECT and
SUBSCRIBE/UNSUBSCRIBE are handled in ``handle_connect.py`` and ``handle_subscribe.py``;
PUBLISH and its acknowledgements, keepalive and closing live here. Every
protocol violation ends in ``_fail``, the one place that turns an error into a
DISCONNECT reason code (5.0) or a plain close (3.x).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

from roost.engine.clock import Timer
from roost.engine.engine import Engine
from roost.engine.handle_connect import NEVER_EXPIRES, UNLIMITED_PACKET, handle_connect
from roost.engine.handle_subscribe import handle_subscribe, handle_unsubscribe
from roost.engine.hooks import AccessEvent, Action, Decision, authorize
from roost.engine.limits import (
    LimitExceeded,
    topic_over_limit,
    user_properties_over_limit,
)
from roost.engine.link import FlowSource, Link
from roost.engine.message import Message
from roost.engine.session import Delivery, Session
from roost.mqtt.decoder import Decoder
from roost.mqtt.encoder import encode, publish_template
from roost.mqtt.errors import PacketTooLarge, ProtocolViolation, UnsupportedProtocolVersion
from roost.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Will,
)
from roost.mqtt.properties import NO_PROPERTIES, Properties
from roost.mqtt.reason_codes import ReasonCode
from roost.mqtt.topics import is_valid_topic_name

log = logging.getLogger("roost.connection")



class State(Enum):
    AWAIT_CONNECT = 1
    CONNECTED = 2
    CLOSED = 3


class Channel:
    """Protocol state for one connection; also the session's outlet while online."""

    # One per connection: slots keep an idle connection small.
    __slots__ = ("engine", "link", "settings", "state", "decoder", "level", "client_id",
                 "username", "session", "will", "keepalive", "last_received",
                 "client_receive_maximum", "client_max_packet", "client_alias_maximum",
                 "alias_out", "alias_in", "disconnect_reason", "_logged_limits", "_timer",
                 "connected_at")

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

    # -- Input -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        self.engine.stats.bytes_received += len(data)
        if (self.state is State.AWAIT_CONNECT and not self.decoder.buffered
                and data[0] != 0x10):
            # Whatever this is (HTTP, TLS, noise), it is not a CONNECT: close now rather
            # than wait for the body it seems to declare.
            self._fail(ProtocolViolation(f"first packet is not CONNECT (byte 0x{data[0]:02x})"))
            return
        try:
            packets = self.decoder.feed(data)
        except ProtocolViolation as exc:
            for packet in exc.preceding:
                self._handle_safely(packet)  # type: ignore[arg-type]
                if self.closed:
                    return
            self._fail(exc)
            return
        if packets:
            # Keepalive counts whole control packets (3.1.2.10), so a peer trickling
            # the bytes of a packet it never finishes still times out.
            self.last_received = self.engine.clock.monotonic()
        for packet in packets:
            try:
                if type(packet) is Publish and self.state is State.CONNECTED:
                    self._on_publish(packet)  # the hot path, one call deep
                else:
                    self._handle(packet)
            except ProtocolViolation as exc:
                self._fail(exc)
            if self.state is State.CLOSED:
                return

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def _handle_safely(self, packet: Packet) -> None:
        try:
            self._handle(packet)
        except ProtocolViolation as exc:
            self._fail(exc)

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
        if self.state is State.AWAIT_CONNECT:
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
            reason = self.disconnect_reason or "connection lost"
            log.info("disconnected %s (%s): %s", self.client_id, self.link.peer, reason,
                     extra={"event": "disconnect", "client_id": self.client_id,
                            "peer": self.link.peer, "listener": self.link.listener,
                            "protocol_level": self.level, "reason": reason})
            self.engine.sessions.closed(session, self.will)
        self.will = None

    def _connect_timed_out(self) -> None:
        self._timer = None
        if self.state is State.AWAIT_CONNECT:
            why = self.breach("connect_timeout",
                               f"no CONNECT within {self.settings.connect_timeout:g} s")
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

    def send_delivery(self, delivery: Delivery, packet_id: int | None, dup: bool,
                      flow: FlowSource | None = None) -> bool:
        message = delivery.message
        stats = self.engine.stats
        link = self.link
        # Only a message with an expiry needs the clock (once per receiver otherwise).
        now = 0.0 if message.expires_at is None else self.engine.clock.monotonic()
        if message.expires_at is not None and message.expired(now):
            stats.dropped_expired += 1
            return False
        if delivery.qos == 0 and link.buffered() > self.settings.max_output_buffer:
            stats.dropped_slow_consumer += 1
            return False
        level = self.level
        simple = level < 5 or (not delivery.subscription_ids and message.expires_at is None
                               and not self.client_alias_maximum)
        if simple and packet_id is None:
            key = (level, delivery.retain)
            data = message.encoded.get(key)
            if data is None:
                data = encode(Publish(message.topic, message.payload, 0, delivery.retain,
                                      False, None, message.properties), level)
                message.encoded[key] = data
        elif simple and packet_id is not None:
            templates = message.templates
            if templates is None:
                templates = message.templates = {}
            tkey = (level, delivery.retain, delivery.qos, dup)
            template = templates.get(tkey)
            if template is None:
                template = templates[tkey] = publish_template(Publish(
                    message.topic, message.payload, delivery.qos, delivery.retain, dup,
                    None, message.properties), level)
            data = template[0] + packet_id.to_bytes(2, "big") + template[1]
        else:
            data = self._encode_publish(delivery, packet_id, dup, now)
        if len(data) > self.client_max_packet:
            stats.dropped_too_large += 1
            return False
        stats.messages_sent += 1
        stats.sent_by_qos[delivery.qos] += 1
        stats.bytes_sent += len(data)
        link.write(data)
        if link.congested and flow is not None and flow is not link:
            link.hold(flow)
        return True

    def _encode_publish(self, delivery: Delivery, packet_id: int | None, dup: bool,
                        now: float) -> bytes:
        message = delivery.message
        topic = message.topic
        props = message.properties
        if self.level == 5:
            props = props.copy()
            props.subscription_identifiers = delivery.subscription_ids
            remaining = message.remaining_expiry(now)
            if remaining is not None:
                props.message_expiry_interval = remaining
            if self.client_alias_maximum:
                if self.alias_out is None:
                    self.alias_out = {}
                alias = self.alias_out.get(topic)
                if alias is not None:
                    props.topic_alias = alias
                    topic = ""
                elif len(self.alias_out) < self.client_alias_maximum:
                    props.topic_alias = self.alias_out[topic] = len(self.alias_out) + 1
        data = encode(Publish(topic, message.payload, delivery.qos, delivery.retain, dup,
                              packet_id, props), self.level)
        # Too large to send: forget an alias we just assigned, as nothing was sent.
        if (len(data) > self.client_max_packet and topic and props.topic_alias is not None
                and self.alias_out and self.alias_out.get(topic) == len(self.alias_out)):
            del self.alias_out[topic]
        return data

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

    # -- PUBLISH and its acknowledgements -----------------------------------------

    def _on_publish(self, p: Publish) -> None:
        settings = self.settings
        engine = self.engine
        qos = p.qos
        if qos > settings.maximum_qos:
            raise ProtocolViolation(f"QoS {qos} not supported", ReasonCode.QOS_NOT_SUPPORTED)
        if p.retain and not settings.retain_available:
            raise ProtocolViolation("retain not supported", ReasonCode.RETAIN_NOT_SUPPORTED)
        props = p.properties
        topic = p.topic if props is NO_PROPERTIES else self._publish_properties(p)
        if topic not in engine.valid_topics:
            self._check_topic_name(topic)
        if qos == 2:
            session = self.session_or_fail()
            if p.packet_id in session.awaiting_pubrel:
                # A resend of a QoS 2 message we already have: acknowledge, never route
                # it twice.
                self.send(Pubrec(p.packet_id))
                return
            if len(session.awaiting_pubrel) >= settings.receive_maximum:
                # Checked before routing: the PUBLISH beyond the limit must not be
                # delivered.
                raise LimitExceeded("receive_maximum", "more QoS 2 messages awaiting "
                                    f"PUBREL than {settings.receive_maximum}",
                                    ReasonCode.RECEIVE_MAXIMUM_EXCEEDED)
        reason = ReasonCode.SUCCESS
        if props.payload_format_indicator == 1 and not _is_utf8(p.payload):
            reason = ReasonCode.PAYLOAD_FORMAT_INVALID
        elif engine.authorizers and authorize(engine.authorizers, AccessEvent(
                self.client_id, self.username, Action.PUBLISH, topic)) is Decision.DENY:
            reason = ReasonCode.NOT_AUTHORIZED
            log.info("publish by %s to %r denied", self.client_id, topic)
        stats = engine.stats
        stats.messages_received += 1
        stats.received_by_qos[qos] += 1
        if qos and not engine.store.healthy:
            # The store cannot take durable work now: refuse rather than acknowledge.
            stats.dropped_store_failure += 1
            if self.level < 5:
                self.close("store unavailable")
                return
            reason = ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
        if reason is ReasonCode.SUCCESS:
            # Only a message with an expiry needs the clock.
            now = engine.clock.monotonic() if props.message_expiry_interval else 0.0
            message = Message.from_publish(p, topic, self.client_id, now, self.level)
            # Receivers that cannot keep up hold this publisher back (Link.hold).
            if engine.publish(message, None, self.link) == 0 and self.level == 5:
                reason = ReasonCode.NO_MATCHING_SUBSCRIBERS
        if p.qos == 0:
            return
        packet_id = p.packet_id
        assert packet_id is not None
        if self.level < 5 and reason.is_error:
            # 3.x cannot refuse a PUBLISH; for a denied one, acknowledge as Mosquitto does.
            reason = ReasonCode.SUCCESS
        if p.qos == 1:
            ack: Packet = Puback(packet_id, reason, NO_PROPERTIES)
        else:
            session = self.session_or_fail()
            if not reason.is_error:
                session.await_pubrel(packet_id)
            ack = Pubrec(packet_id, reason, NO_PROPERTIES)
        engine.store.commit(lambda ok: self._acknowledge(ack, ok))

    def _publish_properties(self, p: Publish) -> str:
        """Check a PUBLISH's properties; return its topic (resolving a Topic Alias)."""
        settings = self.settings
        props = p.properties
        if props.user_properties:
            over = user_properties_over_limit(settings, props)
            if over is not None:
                raise LimitExceeded("max_user_properties", over, ReasonCode.QUOTA_EXCEEDED)
        if props.subscription_identifiers:
            raise ProtocolViolation("PUBLISH from a client with a subscription identifier")
        topic = p.topic
        alias = props.topic_alias
        if alias is not None:
            if alias == 0 or alias > settings.topic_alias_maximum:
                raise ProtocolViolation(f"topic alias {alias} out of range",
                                        ReasonCode.TOPIC_ALIAS_INVALID)
            if self.alias_in is None:
                self.alias_in = {}
            if topic:
                self.alias_in[alias] = topic
            else:
                known = self.alias_in.get(alias)
                if known is None:
                    raise ProtocolViolation(f"unknown topic alias {alias}")
                topic = known
        return topic

    def _check_topic_name(self, topic: str) -> None:
        """Raise if ``topic`` may not be published to; remember it if it may."""
        if not topic:
            # A zero-length Topic Name without a Topic Alias is a Protocol Error (3.3.2.1).
            raise ProtocolViolation("zero-length topic name without a topic alias")
        if not is_valid_topic_name(topic):
            raise ProtocolViolation(f"invalid topic name {topic!r}",
                                    ReasonCode.TOPIC_NAME_INVALID)
        over = topic_over_limit(self.settings, topic)
        if over is not None:
            # Well-formed but not accepted here: 0x90 (5.0 3.3.2.2); 3.x can only close.
            raise LimitExceeded(*over, ReasonCode.TOPIC_NAME_INVALID)
        self.engine.topic_checked(topic)

    def _acknowledge(self, ack: Any, committed: bool) -> None:
        if self.state is not State.CONNECTED:
            return
        if not committed:
            if self.level < 5:
                self.close("store failure")
                return
            if (isinstance(ack, Pubrec) and not ack.reason_code.is_error
                    and self.session is not None):
                # An error PUBREC ends the flow (4.3.3): the client may reuse the packet
                # id at once, and that new message must not be taken for a resend.
                self.session.pubrel_done(ack.packet_id)
            ack.reason_code = ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
        self.send(ack)

    def session_or_fail(self) -> Session:
        if self.session is None:
            raise ProtocolViolation("no session")
        return self.session

    def _on_puback(self, p: Puback) -> None:
        self.session_or_fail().acknowledged(p.packet_id, 1)

    def _on_pubrec(self, p: Pubrec) -> None:
        if self.session_or_fail().received(p.packet_id, p.reason_code.is_error):
            if not p.reason_code.is_error:
                # Once PUBREL is out the PUBLISH must never be sent again (4.3.3), not
                # even after a crash: the "pubrel" state must be on disk first.
                self._send_when_stored(Pubrel(p.packet_id))
        elif not p.reason_code.is_error:
            self._send_when_stored(Pubrel(p.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))

    def _on_pubrel(self, p: Pubrel) -> None:
        session = self.session_or_fail()
        if p.packet_id in session.awaiting_pubrel:
            session.pubrel_done(p.packet_id)
            # PUBCOMP frees the packet id for a new message; were the broker to forget
            # that in a crash, the new message would be taken for a resend and dropped.
            self._send_when_stored(Pubcomp(p.packet_id))
        else:
            self._send_when_stored(Pubcomp(p.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))

    def _send_when_stored(self, packet: Packet) -> None:
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
            # Neither PUBREL nor PUBCOMP can say "not stored": end the connection, the
            # client resends on reconnect.
            self.disconnect(ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR, "store failure")
            return
        self.send(packet)

    def _on_pubcomp(self, p: Pubcomp) -> None:
        self.session_or_fail().acknowledged(p.packet_id, 2)

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
        PacketType.PUBACK: _on_puback,
        PacketType.PUBREC: _on_pubrec,
        PacketType.PUBREL: _on_pubrel,
        PacketType.PUBCOMP: _on_pubcomp,
        PacketType.SUBSCRIBE: handle_subscribe,
        PacketType.UNSUBSCRIBE: handle_unsubscribe,
        PacketType.PINGREQ: _on_pingreq,
        PacketType.DISCONNECT: _on_disconnect,
        PacketType.AUTH: _on_auth,
        PacketType.CONNECT: lambda self, p: self._second_connect(),
    }

    def _second_connect(self) -> None:
        raise ProtocolViolation("second CONNECT")


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
