"""PUBLISH from a client and the acknowledgements of both directions (3.3–3.7, 4.3).

``on_publish`` is the hot path: it is installed as ``Channel._on_publish`` so a PUBLISH
costs one call from the dispatch loop. What it refuses is reported as an ``Outcome``
and answered through ``roost.engine.outcomes``.
"""

from __future__ import annotations

import logging

from roost.engine.connection import Connection
from roost.engine.events import DropReason, MessageDropped
from roost.engine.hooks import AccessEvent, Action, Decision
from roost.engine.limits import LimitExceeded, topic_over_limit, user_properties_over_limit
from roost.engine.message import Message
from roost.engine.outcomes import Outcome, answer
from roost.engine.reserved import client_may_publish
from roost.mqtt.conformance import check_publish, is_utf8
from roost.mqtt.errors import ProtocolViolation
from roost.mqtt.packets import PacketType, Puback, Pubcomp, Publish, Pubrec, Pubrel
from roost.mqtt.properties import NO_PROPERTIES
from roost.mqtt.reason_codes import ReasonCode
from roost.mqtt.topics import is_valid_topic_name

log = logging.getLogger("roost.connection")

# Refusals at PUBLISH that drop the message, as engine events report them.
_DROPS = {
    Outcome.STORE_FAILURE: DropReason.STORE_FAILURE,
    Outcome.NOT_AUTHORIZED: DropReason.NOT_AUTHORIZED,
    Outcome.PAYLOAD_FORMAT_INVALID: DropReason.PAYLOAD_FORMAT_INVALID,
}


def on_publish(self: Connection, p: Publish) -> None:
    """A PUBLISH from the client (3.3): check, authorize, route, acknowledge (QoS 1/2)
    once the store has committed what the acknowledgement promises."""
    settings = self.settings
    engine = self.engine
    qos = p.qos
    if qos > settings.maximum_qos:
        raise ProtocolViolation(f"QoS {qos} not supported", ReasonCode.QOS_NOT_SUPPORTED)
    if p.retain and not settings.retain_available:
        raise ProtocolViolation("retain not supported", ReasonCode.RETAIN_NOT_SUPPORTED)
    props = p.properties
    topic = p.topic
    if props is not NO_PROPERTIES or not topic:
        topic = _publish_properties(self, p)
    if topic not in engine.valid_topics:
        _check_topic_name(self, topic)
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
    outcome: Outcome | None = None
    if props.payload_format_indicator == 1 and not is_utf8(p.payload):
        outcome = Outcome.PAYLOAD_FORMAT_INVALID
    elif topic[0] == "$" and not client_may_publish(topic, self.client_id,
                                                     settings.allow_dollar_topics):
        outcome = Outcome.NOT_AUTHORIZED
        self.breach_once("reserved_topic", f"publish to {topic!r} refused: " + (
            "topics under $SYS belong to the broker" if topic.startswith("$SYS")
            else "$ topics are refused to clients (allow_dollar_topics = false)"))
    elif engine.hooks.authorizers and engine.hooks.authorize(AccessEvent(
            self.client_id, self.username, Action.PUBLISH, topic)) is Decision.DENY:
        outcome = Outcome.NOT_AUTHORIZED
        log.info("publish by %s to %r denied", self.client_id, topic)
    stats = engine.stats
    stats.messages_received += 1
    stats.received_by_qos[qos] += 1
    if qos and not engine.store.healthy:
        # The store cannot take durable work now: refuse rather than acknowledge.
        stats.dropped_store_failure += 1
        outcome = Outcome.STORE_FAILURE
    if outcome is not None and engine.hooks.message_events:
        drop = _DROPS.get(outcome)
        if drop is not None:
            engine.hooks.emit(MessageDropped(None, topic, drop))
    if outcome is None:
        # Only a message with an expiry needs the clock.
        now = engine.clock.monotonic() if props.message_expiry_interval else 0.0
        message = Message.from_publish(p, topic, self.client_id, now, self.level)
        # Receivers that cannot keep up hold this publisher back (Link.hold); passed
        # positionally, as this runs for every message.
        if engine.publish(message, None, self.link) == 0:
            outcome = Outcome.NO_MATCHING_SUBSCRIBERS
    if qos == 0:
        return
    packet_id = p.packet_id
    assert packet_id is not None
    ack_type = PacketType.PUBACK if qos == 1 else PacketType.PUBREC
    reason: ReasonCode = ReasonCode.SUCCESS
    if outcome is not None:
        refusal = answer(outcome, ack_type, self.level)
        if refusal.end:
            self.disconnect(refusal.code, outcome.value)
            return
        reason = refusal.code
    if qos == 1:
        ack: Puback | Pubrec = Puback(packet_id, reason, NO_PROPERTIES)
    else:
        session = self.session_or_fail()
        if not reason.is_error:
            session.await_pubrel(packet_id)
        ack = Pubrec(packet_id, reason, NO_PROPERTIES)
    engine.store.commit(lambda ok: _acknowledge(self, ack, ok))


def _publish_properties(self: Connection, p: Publish) -> str:
    """Check a PUBLISH's properties and the rules spanning its fields; return its topic
    (resolving a Topic Alias)."""
    check_publish(p)
    settings = self.settings
    props = p.properties
    if props.user_properties:
        over = user_properties_over_limit(settings, props)
        if over is not None:
            raise LimitExceeded("max_user_properties", over, ReasonCode.QUOTA_EXCEEDED)
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


def _check_topic_name(self: Connection, topic: str) -> None:
    """Raise if ``topic`` may not be published to; remember it if it may."""
    if not is_valid_topic_name(topic):
        raise ProtocolViolation(f"invalid topic name {topic!r}",
                                ReasonCode.TOPIC_NAME_INVALID)
    over = topic_over_limit(self.settings, topic)
    if over is not None:
        # Well-formed but not accepted here: 0x90 (5.0 3.3.2.2); 3.x can only close.
        raise LimitExceeded(*over, ReasonCode.TOPIC_NAME_INVALID)
    self.engine.topic_checked(topic)


def _acknowledge(self: Connection, ack: Puback | Pubrec, committed: bool) -> None:
    if self.closed:
        return
    if not committed:
        code = self.store_failed(ack.type)
        if code is None:
            return
        if (isinstance(ack, Pubrec) and not ack.reason_code.is_error
                and self.session is not None):
            # An error PUBREC ends the flow (4.3.3): the client may reuse the packet
            # id at once, and that new message must not be taken for a resend.
            self.session.pubrel_done(ack.packet_id)
        ack.reason_code = code
    self.send(ack)


def on_puback(self: Connection, p: Puback) -> None:
    self.session_or_fail().acknowledged(p.packet_id, 1)


def on_pubrec(self: Connection, p: Pubrec) -> None:
    if self.session_or_fail().received(p.packet_id, p.reason_code.is_error):
        if not p.reason_code.is_error:
            # Once PUBREL is out the PUBLISH must never be sent again (4.3.3), not
            # even after a crash: the "pubrel" state must be on disk first.
            self.send_when_stored(Pubrel(p.packet_id))
    elif not p.reason_code.is_error:
        self.send_when_stored(Pubrel(p.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))


def on_pubrel(self: Connection, p: Pubrel) -> None:
    session = self.session_or_fail()
    if p.packet_id in session.awaiting_pubrel:
        session.pubrel_done(p.packet_id)
        # PUBCOMP frees the packet id for a new message; were the broker to forget
        # that in a crash, the new message would be taken for a resend and dropped.
        self.send_when_stored(Pubcomp(p.packet_id))
    else:
        self.send_when_stored(Pubcomp(p.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))


def on_pubcomp(self: Connection, p: Pubcomp) -> None:
    self.session_or_fail().acknowledged(p.packet_id, 2)


