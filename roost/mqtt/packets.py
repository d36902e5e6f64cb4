"""MQTT control packets as slotted dataclasses.

One class per packet type; the protocol version is not stored in a packet but passed to
the encoder and decoder, so the same object can be written for 3.1.1 or 5.0 peers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from roost.mqtt.properties import Properties
from roost.mqtt.reason_codes import ReasonCode


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class ProtocolLevel(IntEnum):
    MQTT_3_1 = 3
    MQTT_3_1_1 = 4
    MQTT_5 = 5


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Connect:
    client_id: str
    protocol_level: int = ProtocolLevel.MQTT_3_1_1
    clean_start: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=Properties)
    type = PacketType.CONNECT


@dataclass(slots=True)
class Connack:
    reason_code: ReasonCode = ReasonCode.SUCCESS
    session_present: bool = False
    properties: Properties = field(default_factory=Properties)
    type = PacketType.CONNACK


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = field(default_factory=Properties)
    # The whole packet as received, set by the decoder for a QoS 0 PUBLISH without
    # properties: exactly what a receiver at the same protocol level is sent, so a
    # broker can forward it without encoding. Not part of the packet's value.
    wire: bytes | None = field(default=None, compare=False, repr=False)
    type = PacketType.PUBLISH


@dataclass(slots=True)
class PublishAck:
    """The shape shared by PUBACK, PUBREC, PUBREL and PUBCOMP."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Puback(PublishAck):
    type = PacketType.PUBACK


@dataclass(slots=True)
class Pubrec(PublishAck):
    type = PacketType.PUBREC


@dataclass(slots=True)
class Pubrel(PublishAck):
    type = PacketType.PUBREL


@dataclass(slots=True)
class Pubcomp(PublishAck):
    type = PacketType.PUBCOMP


@dataclass(slots=True)
class SubscriptionRequest:
    """One topic filter of a SUBSCRIBE with its options (3.8.3.1)."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    packet_id: int
    subscriptions: list[SubscriptionRequest]
    properties: Properties = field(default_factory=Properties)
    type = PacketType.SUBSCRIBE


@dataclass(slots=True)
class Suback:
    packet_id: int
    reason_codes: list[ReasonCode]
    properties: Properties = field(default_factory=Properties)
    type = PacketType.SUBACK


@dataclass(slots=True)
class Unsubscribe:
    packet_id: int
    topic_filters: list[str]
    properties: Properties = field(default_factory=Properties)
    type = PacketType.UNSUBSCRIBE


@dataclass(slots=True)
class Unsuback:
    packet_id: int
    # 3.x UNSUBACK has no payload; the decoder leaves this empty for those peers.
    reason_codes: list[ReasonCode] = field(default_factory=list)
    properties: Properties = field(default_factory=Properties)
    type = PacketType.UNSUBACK


@dataclass(slots=True)
class Pingreq:
    type = PacketType.PINGREQ


@dataclass(slots=True)
class Pingresp:
    type = PacketType.PINGRESP


@dataclass(slots=True)
class Disconnect:
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = field(default_factory=Properties)
    type = PacketType.DISCONNECT


@dataclass(slots=True)
class Auth:
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = field(default_factory=Properties)
    type = PacketType.AUTH


Packet = (
    Connect | Connack | Publish | Puback | Pubrec | Pubrel | Pubcomp | Subscribe | Suback
    | Unsubscribe | Unsuback | Pingreq | Pingresp | Disconnect | Auth
)
