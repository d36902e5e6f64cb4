"""Outbound PUBLISH encoding: one delivery to one connection, as cheaply as possible.

Most receivers need no per-receiver change, so a message is encoded once per (protocol
level, retain flag) and the bytes are shared; QoS 1/2 copies splice each receiver's
packet identifier into one template. Only 5.0 receivers with subscription identifiers,
a message expiry to count down or topic aliases get a PUBLISH of their own.

``send_delivery`` is installed as ``Channel.send_delivery`` (the session's ``Outlet``
method), so the hot path pays no extra call for living here.
"""

from __future__ import annotations

from typing import Protocol

from roost.engine.engine import Engine
from roost.engine.events import DropReason, MessageDelivered, MessageDropped
from roost.engine.link import FlowSource, Link
from roost.engine.message import Message
from roost.engine.session import Delivery
from roost.engine.settings import EngineSettings
from roost.mqtt.encoder import encode, publish_template
from roost.mqtt.packets import Publish


class Receiver(Protocol):
    """The parts of a connection that outbound encoding reads (``Channel`` has them)."""

    engine: Engine
    link: Link
    settings: EngineSettings
    level: int
    client_id: str
    client_max_packet: int
    client_alias_maximum: int
    # Topic aliases we assigned towards the client (5.0), made on first use.
    alias_out: dict[str, int] | None


def send_delivery(self: Receiver, delivery: Delivery, packet_id: int | None,
                  dup: bool, flow: FlowSource | None = None) -> bool:
    """Send one PUBLISH for ``delivery`` (``packet_id`` None for QoS 0); False if it was
    dropped instead: expired, too large for the client's Maximum Packet Size, or QoS 0
    to a connection with more than ``max_output_buffer`` bytes waiting. When this
    connection is congested, holds back ``flow``, the publisher the message came from
    (back-pressure; None for wills, $SYS, resends)."""
    message = delivery.message
    engine = self.engine
    stats = engine.stats
    link = self.link
    # Only a message with an expiry needs the clock (once per receiver otherwise).
    now = 0.0 if message.expires_at is None else engine.clock.monotonic()
    if message.expires_at is not None and message.expired(now):
        stats.dropped_expired += 1
        return _dropped(self, message, DropReason.EXPIRED)
    if delivery.qos == 0 and link.buffered() > self.settings.max_output_buffer:
        stats.dropped_slow_consumer += 1
        return _dropped(self, message, DropReason.SLOW_CONSUMER)
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
        data = encode_individually(self, delivery, packet_id, dup, now)
    if len(data) > self.client_max_packet:
        stats.dropped_too_large += 1
        return _dropped(self, message, DropReason.TOO_LARGE)
    stats.messages_sent += 1
    stats.sent_by_qos[delivery.qos] += 1
    stats.bytes_sent += len(data)
    link.write(data)
    if link.congested and flow is not None and flow is not link:
        link.hold(flow)
    if engine.hooks.message_events:
        engine.hooks.emit(MessageDelivered(self.client_id, message, delivery.qos))
    return True


def _dropped(self: Receiver, message: Message, reason: DropReason) -> bool:
    hooks = self.engine.hooks
    if hooks.message_events:
        hooks.emit(MessageDropped(self.client_id, message.topic, reason))
    return False


def encode_individually(self: Receiver, delivery: Delivery, packet_id: int | None,
                        dup: bool, now: float) -> bytes:
    """A PUBLISH for one 5.0 receiver: its subscription identifiers, the expiry left
    (``now`` is monotonic seconds) and a topic alias where it has room for one."""
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
