"""Incremental decoder: bytes in, packets out, ``need more bytes`` by returning nothing.

The decoder never awaits anything. ``feed`` accepts any chunking of the stream (one
byte at a time included) and returns every packet completed by that chunk. It checks a
packet's declared size against ``max_packet_size`` before buffering its body, so a peer
cannot make us hold more than that.
"""

from __future__ import annotations

from collections.abc import Callable

from roost.mqtt.errors import (
    MalformedPacket,
    PacketTooLarge,
    ProtocolViolation,
    UnsupportedProtocolVersion,
)
from roost.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    ProtocolLevel,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Unsubscribe,
    Will,
)
from roost.mqtt.properties import NO_PROPERTIES, SPECS, PacketKind, Properties, WireType
from roost.mqtt.reason_codes import ReasonCode, reason_from_v3_connack

MAX_REMAINING_LENGTH = 268_435_455

# Fixed-header flag bits that are reserved and must have exactly this value (2.1.3).
_REQUIRED_FLAGS: dict[int, int] = {
    PacketType.CONNECT: 0, PacketType.CONNACK: 0, PacketType.PUBACK: 0, PacketType.PUBREC: 0,
    PacketType.PUBREL: 2, PacketType.PUBCOMP: 0, PacketType.SUBSCRIBE: 2, PacketType.SUBACK: 0,
    PacketType.UNSUBSCRIBE: 2, PacketType.UNSUBACK: 0, PacketType.PINGREQ: 0,
    PacketType.PINGRESP: 0, PacketType.DISCONNECT: 0, PacketType.AUTH: 0,
}


class Reader:
    """A cursor over one packet's body; every read checks bounds."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data)

    def remaining(self) -> int:
        return self.end - self.pos

    def _take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise MalformedPacket("packet ends inside a field")
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MalformedPacket("packet ends inside a field")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u16(self) -> int:
        if self.pos + 2 > self.end:
            raise MalformedPacket("packet ends inside a two-byte integer")
        v = (self.data[self.pos] << 8) | self.data[self.pos + 1]
        self.pos += 2
        return v

    def u32(self) -> int:
        return int.from_bytes(self._take(4), "big")

    def varint(self) -> int:
        value = 0
        for shift in (0, 7, 14, 21):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
        raise MalformedPacket("variable byte integer longer than four bytes")

    def binary(self) -> bytes:
        return self._take(self.u16())

    def utf8(self) -> str:
        return decode_utf8(self._take(self.u16()))

    def rest(self) -> bytes:
        return self._take(self.end - self.pos)


def decode_utf8(raw: bytes) -> str:
    """Decode an MQTT UTF-8 string: well-formed, no surrogates, no U+0000 (1.5.4)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPacket("string is not well-formed UTF-8") from exc
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    return text


def read_properties(r: Reader, kind: PacketKind) -> Properties:
    length = r.varint()
    if length > r.remaining():
        raise MalformedPacket("property length exceeds the packet")
    end = r.pos + length
    props = Properties()
    seen: set[int] = set()
    while r.pos < end:
        ident = r.varint()
        spec = SPECS.get(ident)
        if spec is None:
            raise MalformedPacket(f"unknown property identifier 0x{ident:02x}")
        if kind not in spec.allowed:
            raise MalformedPacket(f"property {spec.id.name} is not allowed in {kind.name}")
        if ident in seen and not spec.repeatable:
            raise ProtocolViolation(f"property {spec.id.name} appears twice")
        seen.add(ident)
        wire = spec.wire
        value: object
        if wire is WireType.BYTE:
            value = r.byte()
        elif wire is WireType.U16:
            value = r.u16()
        elif wire is WireType.U32:
            value = r.u32()
        elif wire is WireType.VARINT:
            value = r.varint()
        elif wire is WireType.UTF8:
            value = r.utf8()
        elif wire is WireType.BINARY:
            value = r.binary()
        else:
            value = (r.utf8(), r.utf8())
        if isinstance(value, int):
            if spec.minimum is not None and value < spec.minimum:
                raise ProtocolViolation(f"property {spec.id.name} is {value}, below {spec.minimum}")
            if spec.maximum is not None and value > spec.maximum:
                raise ProtocolViolation(f"property {spec.id.name} is {value}, above {spec.maximum}")
        if spec.repeatable:
            getattr(props, spec.attr).append(value)
        else:
            setattr(props, spec.attr, value)
    if r.pos != end:
        raise MalformedPacket("a property runs past the property length")
    return props


def _reason(value: int) -> ReasonCode:
    try:
        return ReasonCode(value)
    except ValueError:
        raise MalformedPacket(f"unknown reason code 0x{value:02x}") from None


def _decode_connect(flags: int, r: Reader, level: int) -> Connect:
    name = r.utf8()
    proto = r.byte()
    if (name, proto) not in (("MQTT", 4), ("MQTT", 5), ("MQIsdp", 3)):
        if name in ("MQTT", "MQIsdp"):
            raise UnsupportedProtocolVersion(f"unsupported protocol level {proto}", proto)
        raise ProtocolViolation(f"unknown protocol name {name!r}")
    cflags = r.byte()
    if cflags & 0x01:
        raise MalformedPacket("CONNECT reserved flag is set")
    clean = bool(cflags & 0x02)
    will_flag = bool(cflags & 0x04)
    will_qos = (cflags >> 3) & 0x03
    will_retain = bool(cflags & 0x20)
    has_password = bool(cflags & 0x40)
    has_username = bool(cflags & 0x80)
    if will_qos == 3:
        raise MalformedPacket("will QoS is 3")
    if not will_flag and (will_qos or will_retain):
        raise MalformedPacket("will QoS or retain set without a will")
    if proto < 5 and has_password and not has_username:
        raise MalformedPacket("password without user name")
    keepalive = r.u16()
    props = read_properties(r, PacketKind.CONNECT) if proto == 5 else Properties()
    client_id = r.utf8()
    will = None
    if will_flag:
        will_props = read_properties(r, PacketKind.WILL) if proto == 5 else Properties()
        will_topic = r.utf8()
        will_payload = r.binary()
        will = Will(will_topic, will_payload, will_qos, will_retain, will_props)
    username = r.utf8() if has_username else None
    password = r.binary() if has_password else None
    if r.remaining():
        raise MalformedPacket("bytes after the end of CONNECT")
    return Connect(client_id, proto, clean, keepalive, username, password, will, props)


def _decode_connack(flags: int, r: Reader, level: int) -> Connack:
    ack = r.byte()
    if ack & 0xFE:
        raise MalformedPacket("CONNACK reserved flags are set")
    code = r.byte()
    if level == 5:
        reason = _reason(code)
        props = read_properties(r, PacketKind.CONNACK) if r.remaining() else Properties()
    else:
        reason = reason_from_v3_connack(code)
        props = Properties()
    if r.remaining():
        raise MalformedPacket("bytes after the end of CONNACK")
    return Connack(reason, bool(ack & 1), props)


def _decode_publish(flags: int, r: Reader, level: int) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise MalformedPacket("PUBLISH with DUP set at QoS 0")
    topic = r.utf8()
    packet_id = None
    if qos:
        packet_id = r.u16()
        if packet_id == 0:
            raise MalformedPacket("PUBLISH with packet identifier 0")
    props = read_properties(r, PacketKind.PUBLISH) if level == 5 else Properties()
    return Publish(topic, r.rest(), qos, bool(flags & 0x01), dup, packet_id, props)


def _publish_at(buf: bytearray, pos: int, header_len: int, total: int,
                level: int) -> Publish | None:
    """The common PUBLISH (no properties), read in place from the stream buffer; None
    for anything else, which the general decoder then reads or rejects with its precise
    error. Most of a broker's input is this packet, so it avoids the Reader, a copy of
    the body and a Properties per message."""
    first = buf[pos]
    qos = (first >> 1) & 0x03
    if qos == 3 or (first & 0x08 and not qos):
        return None
    start = pos + header_len
    end = pos + total
    if end - start < 2:
        return None
    p = start + 2 + ((buf[start] << 8) | buf[start + 1])
    if p > end:
        return None
    try:
        topic = buf[start + 2:p].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in topic:
        return None
    packet_id = None
    if qos:
        if p + 2 > end:
            return None
        packet_id = (buf[p] << 8) | buf[p + 1]
        if not packet_id:
            return None
        p += 2
    if level == 5:
        if p >= end or buf[p]:
            return None  # properties present: the general decoder reads them
        p += 1
    wire = bytes(buf[pos:end]) if not qos else None
    return Publish(topic, bytes(buf[p:end]), qos, bool(first & 0x01), bool(first & 0x08),
                   packet_id, NO_PROPERTIES, wire)


def _ack_decoder(cls: type, kind: PacketKind) -> Callable[[int, Reader, int], Packet]:
    def decode(flags: int, r: Reader, level: int) -> Packet:
        packet_id = r.u16()
        if packet_id == 0:
            raise MalformedPacket(f"{kind.name} with packet identifier 0")
        reason = ReasonCode.SUCCESS
        props = NO_PROPERTIES
        if level == 5 and r.remaining():
            reason = _reason(r.byte())
            if r.remaining():
                props = read_properties(r, kind)
        if r.remaining():
            raise MalformedPacket(f"bytes after the end of {kind.name}")
        packet: Packet = cls(packet_id, reason, props)
        return packet

    return decode


def _decode_subscribe(flags: int, r: Reader, level: int) -> Subscribe:
    packet_id = r.u16()
    if packet_id == 0:
        raise MalformedPacket("SUBSCRIBE with packet identifier 0")
    props = read_properties(r, PacketKind.SUBSCRIBE) if level == 5 else Properties()
    if len(props.subscription_identifiers) > 1:
        raise ProtocolViolation("SUBSCRIBE with more than one subscription identifier")
    subs = []
    while r.remaining():
        topic_filter = r.utf8()
        opts = r.byte()
        qos = opts & 0x03
        if qos == 3:
            raise MalformedPacket("SUBSCRIBE requesting QoS 3")
        if level == 5:
            if opts & 0xC0:
                raise MalformedPacket("SUBSCRIBE options reserved bits are set")
            retain_handling = (opts >> 4) & 0x03
            if retain_handling == 3:
                raise ProtocolViolation("SUBSCRIBE with retain handling 3")
            subs.append(SubscriptionRequest(
                topic_filter, qos, bool(opts & 0x04), bool(opts & 0x08), retain_handling))
        else:
            if opts & 0xFC:
                raise MalformedPacket("SUBSCRIBE requested QoS reserved bits are set")
            subs.append(SubscriptionRequest(topic_filter, qos))
    if not subs:
        raise ProtocolViolation("SUBSCRIBE with no topic filters")
    return Subscribe(packet_id, subs, props)


def _decode_suback(flags: int, r: Reader, level: int) -> Suback:
    packet_id = r.u16()
    props = read_properties(r, PacketKind.SUBACK) if level == 5 else Properties()
    return Suback(packet_id, [_reason(b) for b in r.rest()], props)


def _decode_unsubscribe(flags: int, r: Reader, level: int) -> Unsubscribe:
    packet_id = r.u16()
    if packet_id == 0:
        raise MalformedPacket("UNSUBSCRIBE with packet identifier 0")
    props = read_properties(r, PacketKind.UNSUBSCRIBE) if level == 5 else Properties()
    filters = []
    while r.remaining():
        filters.append(r.utf8())
    if not filters:
        raise ProtocolViolation("UNSUBSCRIBE with no topic filters")
    return Unsubscribe(packet_id, filters, props)


def _decode_unsuback(flags: int, r: Reader, level: int) -> Unsuback:
    packet_id = r.u16()
    if level != 5:
        if r.remaining():
            raise MalformedPacket("UNSUBACK has no payload before MQTT 5")
        return Unsuback(packet_id)
    props = read_properties(r, PacketKind.UNSUBACK)
    return Unsuback(packet_id, [_reason(b) for b in r.rest()], props)


def _decode_empty(cls: type) -> Callable[[int, Reader, int], Packet]:
    def decode(flags: int, r: Reader, level: int) -> Packet:
        if r.remaining():
            raise MalformedPacket(f"{cls.__name__.upper()} must have no body")
        packet: Packet = cls()
        return packet

    return decode


def _reasoned_decoder(cls: type, kind: PacketKind) -> Callable[[int, Reader, int], Packet]:
    def decode(flags: int, r: Reader, level: int) -> Packet:
        if level != 5:
            if cls is Auth:
                raise MalformedPacket("AUTH exists only in MQTT 5")
            if r.remaining():
                raise MalformedPacket("DISCONNECT must have no body before MQTT 5")
            packet: Packet = cls()
            return packet
        reason = _reason(r.byte()) if r.remaining() else ReasonCode.SUCCESS
        props = read_properties(r, kind) if r.remaining() else Properties()
        if r.remaining():
            raise MalformedPacket(f"bytes after the end of {kind.name}")
        packet = cls(reason, props)
        return packet

    return decode


_DECODERS: dict[int, Callable[[int, Reader, int], Packet]] = {
    PacketType.CONNECT: _decode_connect,
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBLISH: _decode_publish,
    PacketType.PUBACK: _ack_decoder(Puback, PacketKind.PUBACK),
    PacketType.PUBREC: _ack_decoder(Pubrec, PacketKind.PUBREC),
    PacketType.PUBREL: _ack_decoder(Pubrel, PacketKind.PUBREL),
    PacketType.PUBCOMP: _ack_decoder(Pubcomp, PacketKind.PUBCOMP),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: _decode_unsuback,
    PacketType.PINGREQ: _decode_empty(Pingreq),
    PacketType.PINGRESP: _decode_empty(Pingresp),
    PacketType.DISCONNECT: _reasoned_decoder(Disconnect, PacketKind.DISCONNECT),
    PacketType.AUTH: _reasoned_decoder(Auth, PacketKind.AUTH),
}


def decode_packet(first_byte: int, body: bytes | memoryview, level: int) -> Packet:
    """Decode one packet from its first byte and body (the bytes after remaining length)."""
    ptype = first_byte >> 4
    flags = first_byte & 0x0F
    if ptype == 0:
        raise MalformedPacket("packet type 0 is reserved")
    required = _REQUIRED_FLAGS.get(ptype)
    if required is not None and flags != required:
        raise MalformedPacket(f"{PacketType(ptype).name} with reserved flags 0x{flags:x}")
    if ptype == PacketType.AUTH and level != 5:
        raise MalformedPacket("AUTH exists only in MQTT 5")
    return _DECODERS[ptype](flags, Reader(body), level)


class Decoder:
    """Turns a byte stream into packets.

    ``protocol_level`` starts at 4 and should be set from the CONNECT packet (the
    decoder does so itself when it decodes a CONNECT). ``max_packet_size`` bounds the
    whole packet, fixed header included, as MQTT 5's Maximum Packet Size does.
    """

    def __init__(self, protocol_level: int = ProtocolLevel.MQTT_3_1_1,
                 max_packet_size: int = MAX_REMAINING_LENGTH + 5) -> None:
        self.protocol_level = protocol_level
        self.max_packet_size = max_packet_size
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete packet."""
        return len(self._buf)

    def pending_header(self) -> tuple[int, int] | None:
        """(first byte, declared total size) of the packet being received, if known."""
        parsed = self._parse_header(self._buf, 0)
        if parsed is None:
            return None
        return self._buf[0], parsed[0] + parsed[1]

    @staticmethod
    def _parse_header(buf: bytearray, start: int) -> tuple[int, int] | None:
        """(header length, remaining length) of the packet at ``start``, None if cut."""
        value = 0
        pos = start + 1
        for shift in (0, 7, 14, 21):
            if pos >= len(buf):
                return None
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return pos - start, value
        raise MalformedPacket("remaining length longer than four bytes")

    def feed(self, data: bytes) -> list[Packet]:
        """Add bytes; return the packets they complete (possibly none).

        On a violation the exception's ``preceding`` holds the packets completed before
        it, which the caller should still handle; the decoder is unusable afterwards.
        """
        buf = self._buf
        buf += data
        packets: list[Packet] = []
        pos = 0
        n = len(buf)
        try:
            while n - pos >= 2:
                length = buf[pos + 1]
                if length < 0x80:  # one-byte remaining length: most small packets
                    header_len = 2
                else:
                    parsed = self._parse_header(buf, pos)
                    if parsed is None:
                        break
                    header_len, length = parsed
                total = header_len + length
                if total > self.max_packet_size:
                    raise PacketTooLarge(f"packet of {total} bytes exceeds the maximum "
                                         f"of {self.max_packet_size}")
                if n - pos < total:
                    break
                first = buf[pos]
                packet: Packet | None = None
                if first >> 4 == PacketType.PUBLISH:
                    packet = _publish_at(buf, pos, header_len, total, self.protocol_level)
                elif first == 0x40 and length == 2:  # PUBACK, success: one per QoS 1 message
                    packet_id = (buf[pos + 2] << 8) | buf[pos + 3]
                    if packet_id:
                        packet = Puback(packet_id, ReasonCode.SUCCESS, NO_PROPERTIES)
                if packet is None:
                    body = bytes(buf[pos + header_len:pos + total])
                    packet = decode_packet(first, body, self.protocol_level)
                pos += total
                if isinstance(packet, Connect):
                    self.protocol_level = packet.protocol_level
                packets.append(packet)
        except ProtocolViolation as exc:
            exc.preceding = list(packets)
            buf.clear()
            raise
        if pos:
            del buf[:pos]
        return packets
