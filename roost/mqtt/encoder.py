"""Encoder: ``encode(packet, level)`` returns the packet's bytes for that protocol level.

Fields a level cannot carry (properties before 5.0, reason codes on 3.x acks) are left
out rather than rejected, so the engine can build one packet for any peer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from roost.mqtt.errors import UsageError
from roost.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from roost.mqtt.properties import Properties, WireType, present
from roost.mqtt.reason_codes import ReasonCode, connack_code_for_v3

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
EMPTY_PROPERTIES = b"\x00"


def varint(value: int) -> bytes:
    """Encode a Variable Byte Integer (1.5.5)."""
    if value < 0x80:
        return bytes((value,))
    if value > 268_435_455:
        raise UsageError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise UsageError("string longer than 65535 bytes")
    return _U16.pack(len(raw)) + raw


def binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise UsageError("binary data longer than 65535 bytes")
    return _U16.pack(len(data)) + data


def _property_value(wire: WireType, value: Any) -> bytes:
    if wire is WireType.BYTE:
        return bytes((value,))
    if wire is WireType.U16:
        return _U16.pack(value)
    if wire is WireType.U32:
        return _U32.pack(value)
    if wire is WireType.VARINT:
        return varint(value)
    if wire is WireType.UTF8:
        return utf8(value)
    if wire is WireType.BINARY:
        return binary(value)
    key, val = value
    return utf8(key) + utf8(val)


def properties(props: Properties) -> bytes:
    """Encode a property block, length prefix included."""
    body = b"".join(varint(spec.id) + _property_value(spec.wire, v)
                    for spec, v in present(props))
    return varint(len(body)) + body


def frame(first_byte: int, body: bytes) -> bytes:
    """Prefix a body with its fixed header."""
    return bytes((first_byte,)) + varint(len(body)) + body


def _connect(p: Connect, level: int) -> bytes:
    level = p.protocol_level
    name = b"\x00\x06MQIsdp" if level == 3 else b"\x00\x04MQTT"
    flags = 0x02 if p.clean_start else 0
    if p.will is not None:
        flags |= 0x04 | (p.will.qos << 3) | (0x20 if p.will.retain else 0)
    if p.password is not None:
        flags |= 0x40
    if p.username is not None:
        flags |= 0x80
    parts = [name, bytes((level, flags)), _U16.pack(p.keepalive)]
    if level == 5:
        parts.append(properties(p.properties))
    parts.append(utf8(p.client_id))
    if p.will is not None:
        if level == 5:
            parts.append(properties(p.will.properties))
        parts += [utf8(p.will.topic), binary(p.will.payload)]
    if p.username is not None:
        parts.append(utf8(p.username))
    if p.password is not None:
        parts.append(binary(p.password))
    return frame(0x10, b"".join(parts))


def _connack(p: Connack, level: int) -> bytes:
    if level == 5:
        code = int(p.reason_code)
        return frame(0x20, bytes((int(p.session_present), code)) + properties(p.properties))
    return frame(0x20, bytes((int(p.session_present), connack_code_for_v3(p.reason_code))))


def publish_header(p: Publish) -> int:
    return 0x30 | (0x08 if p.dup else 0) | (p.qos << 1) | (0x01 if p.retain else 0)


def _publish(p: Publish, level: int) -> bytes:
    parts = [utf8(p.topic)]
    if p.qos:
        if not p.packet_id:
            raise UsageError("PUBLISH at QoS 1 or 2 needs a packet identifier")
        parts.append(_U16.pack(p.packet_id))
    if level == 5:
        parts.append(properties(p.properties))
    parts.append(p.payload)
    return frame(publish_header(p), b"".join(parts))


def publish_template(p: Publish, level: int) -> tuple[bytes, bytes]:
    """A QoS 1/2 PUBLISH cut where its packet identifier goes: ``head + id + tail`` is
    the packet for any id (``p.packet_id`` is ignored), so a message sent to many
    receivers, each with its own id, is encoded once."""
    if not p.qos:
        raise UsageError("a template is for PUBLISH at QoS 1 or 2")
    topic = utf8(p.topic)
    tail = properties(p.properties) + p.payload if level == 5 else p.payload
    head = bytes((publish_header(p),)) + varint(len(topic) + 2 + len(tail)) + topic
    return head, tail


def _ack_encoder(first: int) -> Callable[[Any, int], bytes]:
    def encode(p: Puback | Pubrec | Pubrel | Pubcomp, level: int) -> bytes:
        pid = _U16.pack(p.packet_id)
        if level != 5:
            return frame(first, pid)
        if p.properties.is_empty():
            if p.reason_code == ReasonCode.SUCCESS:
                return frame(first, pid)
            return frame(first, pid + bytes((p.reason_code,)))
        return frame(first, pid + bytes((p.reason_code,)) + properties(p.properties))

    return encode


def _subscribe(p: Subscribe, level: int) -> bytes:
    parts = [_U16.pack(p.packet_id)]
    if level == 5:
        parts.append(properties(p.properties))
    for s in p.subscriptions:
        opts = s.qos
        if level == 5:
            opts |= (0x04 if s.no_local else 0) | (0x08 if s.retain_as_published else 0)
            opts |= s.retain_handling << 4
        parts += [utf8(s.topic_filter), bytes((opts,))]
    return frame(0x82, b"".join(parts))


def _suback(p: Suback, level: int) -> bytes:
    props = properties(p.properties) if level == 5 else b""
    codes = bytes(int(c) if level == 5 or c < 0x80 else 0x80 for c in p.reason_codes)
    return frame(0x90, _U16.pack(p.packet_id) + props + codes)


def _unsubscribe(p: Unsubscribe, level: int) -> bytes:
    props = properties(p.properties) if level == 5 else b""
    return frame(0xA2, _U16.pack(p.packet_id) + props + b"".join(utf8(f) for f in p.topic_filters))


def _unsuback(p: Unsuback, level: int) -> bytes:
    if level != 5:
        return frame(0xB0, _U16.pack(p.packet_id))
    return frame(0xB0, _U16.pack(p.packet_id) + properties(p.properties)
                 + bytes(int(c) for c in p.reason_codes))


def _reasoned(first: int) -> Callable[[Any, int], bytes]:
    def encode(p: Disconnect | Auth, level: int) -> bytes:
        if level != 5:
            if first == 0xF0:
                raise UsageError("AUTH exists only in MQTT 5")
            return frame(first, b"")
        if p.properties.is_empty():
            if p.reason_code == ReasonCode.SUCCESS:
                return frame(first, b"")
            return frame(first, bytes((p.reason_code,)))
        return frame(first, bytes((p.reason_code,)) + properties(p.properties))

    return encode


_ENCODERS: dict[int, Callable[[Any, int], bytes]] = {
    PacketType.CONNECT: _connect,
    PacketType.CONNACK: _connack,
    PacketType.PUBLISH: _publish,
    PacketType.PUBACK: _ack_encoder(0x40),
    PacketType.PUBREC: _ack_encoder(0x50),
    PacketType.PUBREL: _ack_encoder(0x62),
    PacketType.PUBCOMP: _ack_encoder(0x70),
    PacketType.SUBSCRIBE: _subscribe,
    PacketType.SUBACK: _suback,
    PacketType.UNSUBSCRIBE: _unsubscribe,
    PacketType.UNSUBACK: _unsuback,
    PacketType.PINGREQ: lambda p, level: b"\xc0\x00",
    PacketType.PINGRESP: lambda p, level: b"\xd0\x00",
    PacketType.DISCONNECT: _reasoned(0xE0),
    PacketType.AUTH: _reasoned(0xF0),
}


def encode(packet: Packet, level: int) -> bytes:
    """Encode ``packet`` for a peer speaking protocol ``level`` (3, 4 or 5)."""
    return _ENCODERS[packet.type](packet, level)



