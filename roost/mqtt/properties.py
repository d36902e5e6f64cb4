"""MQTT 5.0 properties (section 2.2.2): identifiers, wire types and where each may appear."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any


class PropertyId(IntEnum):
    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


class WireType(IntEnum):
    BYTE = 1
    U16 = 2
    U32 = 3
    VARINT = 4
    UTF8 = 5
    BINARY = 6
    UTF8_PAIR = 7


@dataclass(slots=True)
class Properties:
    """The properties of one packet; ``None`` means absent.

    ``user_properties`` and ``subscription_identifiers`` may repeat, so they are lists.
    """

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: list[int] = field(default_factory=list)
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: int | None = None
    will_delay_interval: int | None = None
    request_response_information: int | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: int | None = None
    user_properties: list[tuple[str, str]] = field(default_factory=list)
    maximum_packet_size: int | None = None
    wildcard_subscription_available: int | None = None
    subscription_identifier_available: int | None = None
    shared_subscription_available: int | None = None

    def copy(self) -> Properties:
        new = Properties(**{f.name: getattr(self, f.name) for f in fields(self)})
        new.subscription_identifiers = list(self.subscription_identifiers)
        new.user_properties = list(self.user_properties)
        return new

    def is_empty(self) -> bool:
        return all(
            (not v) if isinstance(v, list) else v is None
            for v in (getattr(self, f.name) for f in fields(self))
        )


# The properties of every packet that carries none: what the decoder gives a PUBLISH
# without properties (most of them), sparing an allocation per message. Never mutated;
# whoever adds fields to a packet's properties copies them first.
NO_PROPERTIES = Properties()


class PacketKind(IntEnum):
    """Where a property may appear; WILL is the will-properties block of CONNECT."""

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
    DISCONNECT = 14
    AUTH = 15
    WILL = 100


@dataclass(frozen=True, slots=True)
class PropertySpec:
    id: PropertyId
    attr: str
    wire: WireType
    allowed: frozenset[PacketKind]
    repeatable: bool = False
    # Inclusive bounds that a value must respect; a value outside is a protocol error.
    minimum: int | None = None
    maximum: int | None = None


_K = PacketKind
_ACKS = frozenset({_K.PUBACK, _K.PUBREC, _K.PUBREL, _K.PUBCOMP, _K.SUBACK, _K.UNSUBACK})
_REASONED = _ACKS | {_K.CONNACK, _K.DISCONNECT, _K.AUTH}

SPECS: dict[int, PropertySpec] = {
    s.id: s
    for s in (
        PropertySpec(PropertyId.PAYLOAD_FORMAT_INDICATOR, "payload_format_indicator",
                     WireType.BYTE, frozenset({_K.PUBLISH, _K.WILL}), maximum=1),
        PropertySpec(PropertyId.MESSAGE_EXPIRY_INTERVAL, "message_expiry_interval",
                     WireType.U32, frozenset({_K.PUBLISH, _K.WILL})),
        PropertySpec(PropertyId.CONTENT_TYPE, "content_type",
                     WireType.UTF8, frozenset({_K.PUBLISH, _K.WILL})),
        PropertySpec(PropertyId.RESPONSE_TOPIC, "response_topic",
                     WireType.UTF8, frozenset({_K.PUBLISH, _K.WILL})),
        PropertySpec(PropertyId.CORRELATION_DATA, "correlation_data",
                     WireType.BINARY, frozenset({_K.PUBLISH, _K.WILL})),
        PropertySpec(PropertyId.SUBSCRIPTION_IDENTIFIER, "subscription_identifiers",
                     WireType.VARINT, frozenset({_K.PUBLISH, _K.SUBSCRIBE}),
                     repeatable=True, minimum=1, maximum=268_435_455),
        PropertySpec(PropertyId.SESSION_EXPIRY_INTERVAL, "session_expiry_interval",
                     WireType.U32, frozenset({_K.CONNECT, _K.CONNACK, _K.DISCONNECT})),
        PropertySpec(PropertyId.ASSIGNED_CLIENT_IDENTIFIER, "assigned_client_identifier",
                     WireType.UTF8, frozenset({_K.CONNACK})),
        PropertySpec(PropertyId.SERVER_KEEP_ALIVE, "server_keep_alive",
                     WireType.U16, frozenset({_K.CONNACK})),
        PropertySpec(PropertyId.AUTHENTICATION_METHOD, "authentication_method",
                     WireType.UTF8, frozenset({_K.CONNECT, _K.CONNACK, _K.AUTH})),
        PropertySpec(PropertyId.AUTHENTICATION_DATA, "authentication_data",
                     WireType.BINARY, frozenset({_K.CONNECT, _K.CONNACK, _K.AUTH})),
        PropertySpec(PropertyId.REQUEST_PROBLEM_INFORMATION, "request_problem_information",
                     WireType.BYTE, frozenset({_K.CONNECT}), maximum=1),
        PropertySpec(PropertyId.WILL_DELAY_INTERVAL, "will_delay_interval",
                     WireType.U32, frozenset({_K.WILL})),
        PropertySpec(PropertyId.REQUEST_RESPONSE_INFORMATION, "request_response_information",
                     WireType.BYTE, frozenset({_K.CONNECT}), maximum=1),
        PropertySpec(PropertyId.RESPONSE_INFORMATION, "response_information",
                     WireType.UTF8, frozenset({_K.CONNACK})),
        PropertySpec(PropertyId.SERVER_REFERENCE, "server_reference",
                     WireType.UTF8, frozenset({_K.CONNACK, _K.DISCONNECT})),
        PropertySpec(PropertyId.REASON_STRING, "reason_string", WireType.UTF8, _REASONED),
        PropertySpec(PropertyId.RECEIVE_MAXIMUM, "receive_maximum",
                     WireType.U16, frozenset({_K.CONNECT, _K.CONNACK}), minimum=1),
        PropertySpec(PropertyId.TOPIC_ALIAS_MAXIMUM, "topic_alias_maximum",
                     WireType.U16, frozenset({_K.CONNECT, _K.CONNACK})),
        PropertySpec(PropertyId.TOPIC_ALIAS, "topic_alias",
                     WireType.U16, frozenset({_K.PUBLISH})),
        PropertySpec(PropertyId.MAXIMUM_QOS, "maximum_qos",
                     WireType.BYTE, frozenset({_K.CONNACK}), maximum=1),
        PropertySpec(PropertyId.RETAIN_AVAILABLE, "retain_available",
                     WireType.BYTE, frozenset({_K.CONNACK}), maximum=1),
        PropertySpec(PropertyId.USER_PROPERTY, "user_properties", WireType.UTF8_PAIR,
                     frozenset(_K), repeatable=True),
        PropertySpec(PropertyId.MAXIMUM_PACKET_SIZE, "maximum_packet_size",
                     WireType.U32, frozenset({_K.CONNECT, _K.CONNACK}), minimum=1),
        PropertySpec(PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE,
                     "wildcard_subscription_available",
                     WireType.BYTE, frozenset({_K.CONNACK}), maximum=1),
        PropertySpec(PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                     "subscription_identifier_available",
                     WireType.BYTE, frozenset({_K.CONNACK}), maximum=1),
        PropertySpec(PropertyId.SHARED_SUBSCRIPTION_AVAILABLE,
                     "shared_subscription_available",
                     WireType.BYTE, frozenset({_K.CONNACK}), maximum=1),
    )
}

SPECS_BY_ATTR: dict[str, PropertySpec] = {s.attr: s for s in SPECS.values()}


def present(props: Properties) -> list[tuple[PropertySpec, Any]]:
    """The properties that are set, in identifier order, repeatables expanded."""
    out: list[tuple[PropertySpec, Any]] = []
    for spec in SPECS.values():
        value = getattr(props, spec.attr)
        if spec.repeatable:
            out.extend((spec, v) for v in value)
        elif value is not None:
            out.append((spec, value))
    return out
