"""An application message as it travels through the broker."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from roost.mqtt.packets import Publish, Will
from roost.mqtt.properties import NO_PROPERTIES, Properties


class Origin(Enum):
    """Where a message entered the broker."""

    CLIENT = 1  # a client of this node (``Message.origin`` is its client id), or its will
    REMOTE = 2  # another node of the cluster, through the backplane
    BRIDGE = 3  # another broker, through a bridge
    SYS = 4  # the broker itself ($SYS topics)


@dataclass(slots=True)
class Message:
    """A published message; immutable once routed, shared by every receiver.

    ``properties`` holds only what travels with the message (payload format, content
    type, response topic, correlation data, user properties); per-receiver fields such
    as subscription identifiers and topic aliases are added when it is sent.

    ``origin`` is the publishing client's id where there is one (for No Local, 3.8.3.1);
    ``origin_kind`` says where the message entered the broker.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties = field(default_factory=Properties)
    origin: str | None = None
    # Monotonic deadline from the Message Expiry Interval, None if it never expires.
    expires_at: float | None = None
    # Encoded PUBLISH bytes shared by every receiver that needs no per-receiver change,
    # keyed by (protocol level, retain flag).
    encoded: dict[tuple[int, bool], bytes] = field(default_factory=dict)
    # The same for QoS 1/2 receivers, cut where each one's packet identifier goes; keyed
    # by (protocol level, retain, QoS, DUP) and made on first use.
    templates: dict[tuple[int, bool, int, bool], tuple[bytes, bytes]] | None = None
    origin_kind: Origin = Origin.CLIENT

    @classmethod
    def from_publish(cls, p: Publish, topic: str, origin: str | None, now: float,
                     level: int) -> Message:
        """The message of a PUBLISH received at protocol ``level``; ``now`` is needed
        only when it has a Message Expiry Interval."""
        props = p.properties
        if props is NO_PROPERTIES:
            message = cls(topic, p.payload, p.qos, p.retain, NO_PROPERTIES, origin)
        else:
            message = cls(topic, p.payload, p.qos, p.retain, forwardable(props), origin,
                          _deadline(props, now))
        wire = p.wire
        if wire is not None:
            # A QoS 0 PUBLISH without properties is sent on exactly as it came, to
            # receivers at the same level (3 and 4 share the format) and retain flag.
            if level == 5:
                message.encoded[(5, p.retain)] = wire
            else:
                message.encoded[(3, p.retain)] = message.encoded[(4, p.retain)] = wire
        return message

    @classmethod
    def from_will(cls, w: Will, origin: str, now: float) -> Message:
        return cls(w.topic, w.payload, w.qos, w.retain, forwardable(w.properties), origin,
                   _deadline(w.properties, now))

    def remaining_expiry(self, now: float) -> int | None:
        """Seconds left before expiry, rounded up; None if it never expires."""
        if self.expires_at is None:
            return None
        return max(0, math.ceil(self.expires_at - now))

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def _deadline(props: Properties, now: float) -> float | None:
    if not props.message_expiry_interval:
        # Absent, or 0: Mosquitto treats 0 as "never expires" rather than dropping the
        # message before it can reach even an online subscriber.
        return None
    return now + props.message_expiry_interval


def forwardable(props: Properties) -> Properties:
    """The properties the server must forward unaltered with a message (3.3.2.3)."""
    if (props.payload_format_indicator is None and props.content_type is None
            and props.response_topic is None and props.correlation_data is None
            and not props.user_properties):
        return NO_PROPERTIES
    return Properties(
        payload_format_indicator=props.payload_format_indicator,
        content_type=props.content_type,
        response_topic=props.response_topic,
        correlation_data=props.correlation_data,
        user_properties=list(props.user_properties),
    )
