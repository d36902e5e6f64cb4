"""Specific malformed and forbidden inputs: each names the exception class and reason code."""

from __future__ import annotations

import pytest

from roost.mqtt import (
    Connect,
    Decoder,
    MalformedPacket,
    PacketTooLarge,
    Pingreq,
    ProtocolViolation,
    Publish,
    ReasonCode,
    UnsupportedProtocolVersion,
    encode,
)

RC = ReasonCode


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def frame(first: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes((first, len(body))) + body


def connect_body(level: int = 4, flags: int = 0x02, properties: str = "", rest: str = "0000",
                 name: str = "0004 4d515454") -> bytes:
    """CONNECT variable header and payload; ``rest`` is everything after the keep alive
    and (for 5.0) the properties, i.e. the payload; the default is an empty client id."""
    props = (f"{len(h(properties)):02x}" + properties) if level == 5 else ""
    return h(f"{name} {level:02x} {flags:02x} 003c {props} {rest}")


def v5_connect(properties: str) -> bytes:
    return frame(0x10, connect_body(5, properties=properties))


def v5_subscribe(properties: str = "", payload: str = "0001 61 00") -> bytes:
    props = f"{len(h(properties)):02x}" + properties
    return frame(0x82, h(f"0001 {props} {payload}"))


def expect(data: bytes, exc: type[ProtocolViolation], reason: ReasonCode,
           level: int = 4) -> ProtocolViolation:
    decoder = Decoder(level)
    with pytest.raises(ProtocolViolation) as info:
        decoder.feed(data)
    assert type(info.value) is exc
    assert info.value.reason == reason
    return info.value


# (id, level, bytes, exception class, reason)
CASES: list[tuple[str, int, bytes, type[ProtocolViolation], ReasonCode]] = [
    # ---- fixed header ------------------------------------------------------------------------
    ("remaining-length-5-bytes", 4, h("30 ff ff ff ff 7f"), MalformedPacket, RC.MALFORMED_PACKET),
    ("remaining-length-4th-byte-continues", 4, h("30 80 80 80 80"), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("packet-type-0", 4, h("00 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("packet-type-0-v5", 5, h("00 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("subscribe-flags-0", 4, frame(0x80, h("0001 0001 61 00")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("unsubscribe-flags-0", 4, frame(0xA0, h("0001 0001 61")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("pubrel-flags-0", 4, h("60 02 0001"), MalformedPacket, RC.MALFORMED_PACKET),
    ("pubrel-flags-0-v5", 5, h("60 02 0001"), MalformedPacket, RC.MALFORMED_PACKET),
    ("pingreq-flags-1", 4, h("c1 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("puback-flags-2", 4, h("42 02 0001"), MalformedPacket, RC.MALFORMED_PACKET),
    ("connect-flags-1", 4, frame(0x11, connect_body()), MalformedPacket, RC.MALFORMED_PACKET),
    ("disconnect-flags-f", 4, h("ef 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("pingreq-with-body", 4, h("c0 01 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("disconnect-311-with-body", 4, h("e0 01 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("auth-at-level-4", 4, h("f0 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("auth-at-level-4-with-reason", 4, h("f0 01 18"), MalformedPacket, RC.MALFORMED_PACKET),
    # ---- PUBLISH -----------------------------------------------------------------------------
    ("publish-qos-3", 4, frame(0x36, h("0003 612f62 0001")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-qos-3-v5", 5, frame(0x36, h("0003 612f62 0001 00")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-dup-qos-0", 4, frame(0x38, h("0003 612f62")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-packet-id-0", 4, frame(0x32, h("0003 612f62 0000")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-qos2-packet-id-0-v5", 5, frame(0x34, h("0003 612f62 0000 00")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-topic-invalid-utf8", 4, frame(0x30, h("0003 61ff62")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-topic-utf16-surrogate", 4, frame(0x30, h("0003 eda080")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-topic-overlong-nul", 4, frame(0x30, h("0002 c080")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-topic-nul", 4, frame(0x30, h("0003 610062")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-topic-length-past-end", 4, frame(0x30, h("0005 6162")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("publish-properties-past-end", 5, frame(0x30, h("0001 61 05 01 01")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("session-expiry-in-publish", 5,
     frame(0x30, h("0001 61 03 11 0000")),  # SESSION_EXPIRY_INTERVAL is not for PUBLISH
     MalformedPacket, RC.MALFORMED_PACKET),
    # ---- packet identifiers ------------------------------------------------------------------
    ("subscribe-packet-id-0", 4, frame(0x82, h("0000 0001 61 00")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("unsubscribe-packet-id-0", 4, frame(0xA2, h("0000 0001 61")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("puback-packet-id-0", 4, h("40 02 0000"), MalformedPacket, RC.MALFORMED_PACKET),
    ("pubrec-packet-id-0", 4, h("50 02 0000"), MalformedPacket, RC.MALFORMED_PACKET),
    ("pubrel-packet-id-0", 4, h("62 02 0000"), MalformedPacket, RC.MALFORMED_PACKET),
    ("pubcomp-packet-id-0", 4, h("70 02 0000"), MalformedPacket, RC.MALFORMED_PACKET),
    ("puback-packet-id-0-v5", 5, h("40 03 0000 10"), MalformedPacket, RC.MALFORMED_PACKET),
    ("puback-311-trailing-bytes", 4, h("40 03 0001 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("puback-truncated-body", 4, h("40 01 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("puback-unknown-reason-code", 5, h("40 03 0001 05"), MalformedPacket,
     RC.MALFORMED_PACKET),
    # ---- CONNACK / UNSUBACK: fixed-size bodies -------------------------------------------------
    ("connack-311-trailing-bytes", 4, h("20 03 00 00 00"), MalformedPacket,
     RC.MALFORMED_PACKET),  # 3.2.1: the remaining length is 2
    ("connack-50-trailing-bytes", 5, h("20 04 00 00 00 00"), MalformedPacket,
     RC.MALFORMED_PACKET),  # 3.2.3: CONNACK has no payload
    ("connack-reserved-acknowledge-flags", 4, h("20 02 02 00"), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("connack-50-unknown-reason-code", 5, h("20 03 00 05 00"), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("unsuback-311-payload", 4, h("b0 03 0001 00"), MalformedPacket,
     RC.MALFORMED_PACKET),  # 3.11.1: the remaining length is 2
    # ---- CONNECT -----------------------------------------------------------------------------
    ("connect-reserved-flag", 4, frame(0x10, connect_body(flags=0x03)), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("connect-reserved-flag-v5", 5, frame(0x10, connect_body(5, flags=0x03)), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("connect-will-qos-3", 4,
     frame(0x10, connect_body(flags=0x1E, rest="0000 0001 74 0000")),
     MalformedPacket, RC.MALFORMED_PACKET),
    ("connect-will-qos-without-will", 4, frame(0x10, connect_body(flags=0x0A)),
     MalformedPacket, RC.MALFORMED_PACKET),
    ("connect-will-retain-without-will", 4, frame(0x10, connect_body(flags=0x22)),
     MalformedPacket, RC.MALFORMED_PACKET),
    ("connect-311-password-without-username", 4,
     frame(0x10, connect_body(flags=0x42, rest="0000 0001 70")),
     MalformedPacket, RC.MALFORMED_PACKET),
    ("connect-31-password-without-username", 3,
     frame(0x10, connect_body(3, flags=0x42, rest="0001 63 0001 70",
                              name="0006 4d5149736470")),
     MalformedPacket, RC.MALFORMED_PACKET),
    ("connect-username-flag-but-no-username", 4,
     frame(0x10, connect_body(flags=0x82, rest="0000")), MalformedPacket, RC.MALFORMED_PACKET),
    ("connect-trailing-bytes", 4, frame(0x10, connect_body(rest="0000 00")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("connect-unknown-protocol-name", 4,
     frame(0x10, connect_body(name="0004 4d515458")), ProtocolViolation, RC.PROTOCOL_ERROR),
    ("connect-unknown-protocol-name-v5", 5,
     frame(0x10, connect_body(name="0004 6d717474")), ProtocolViolation, RC.PROTOCOL_ERROR),
    ("connect-client-id-invalid-utf8", 4, frame(0x10, connect_body(rest="0001 80")),
     MalformedPacket, RC.MALFORMED_PACKET),
    # ---- properties --------------------------------------------------------------------------
    ("duplicate-session-expiry", 5, v5_connect("11 00000001 11 00000002"), ProtocolViolation,
     RC.PROTOCOL_ERROR),
    ("duplicate-receive-maximum", 5, v5_connect("21 0001 21 0001"), ProtocolViolation,
     RC.PROTOCOL_ERROR),
    ("duplicate-will-delay", 5,
     frame(0x10, connect_body(5, flags=0x06,
                              rest="0000 0a 18 00000001 18 00000002 0001 74 0000")),
     ProtocolViolation, RC.PROTOCOL_ERROR),
    ("unknown-property-id", 5, v5_connect("05 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("unknown-property-id-7f", 5, v5_connect("7f 00"), MalformedPacket, RC.MALFORMED_PACKET),
    ("topic-alias-in-connect", 5, v5_connect("23 0001"), MalformedPacket, RC.MALFORMED_PACKET),
    ("will-delay-in-connect", 5, v5_connect("18 00000001"), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("session-expiry-in-will", 5,
     frame(0x10, connect_body(5, flags=0x06, rest="0000 05 11 00000001 0001 74 0000")),
     MalformedPacket, RC.MALFORMED_PACKET),
    ("property-value-past-length", 5, v5_connect("11 0000"), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("receive-maximum-0", 5, v5_connect("21 0000"), ProtocolViolation, RC.PROTOCOL_ERROR),
    ("maximum-packet-size-0", 5, v5_connect("27 00000000"), ProtocolViolation,
     RC.PROTOCOL_ERROR),
    ("request-problem-information-2", 5, v5_connect("17 02"), ProtocolViolation,
     RC.PROTOCOL_ERROR),
    ("request-response-information-2", 5, v5_connect("19 02"), ProtocolViolation,
     RC.PROTOCOL_ERROR),
    ("property-string-invalid-utf8", 5, v5_connect("26 0001 ff 0000"), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("auth-method-in-disconnect", 5, h("e0 05 00 03 15 0000"), MalformedPacket,
     RC.MALFORMED_PACKET),  # AUTHENTICATION_METHOD is not allowed in DISCONNECT
    # ---- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------------------
    ("subscribe-no-filters", 4, h("82 02 0001"), ProtocolViolation, RC.PROTOCOL_ERROR),
    ("subscribe-no-filters-v5", 5, h("82 03 0001 00"), ProtocolViolation, RC.PROTOCOL_ERROR),
    ("unsubscribe-no-filters", 4, h("a2 02 0001"), ProtocolViolation, RC.PROTOCOL_ERROR),
    ("unsubscribe-no-filters-v5", 5, h("a2 03 0001 00"), ProtocolViolation, RC.PROTOCOL_ERROR),
    ("subscribe-retain-handling-3", 5, v5_subscribe(payload="0001 61 30"), ProtocolViolation,
     RC.PROTOCOL_ERROR),
    ("subscribe-v5-reserved-bit-6", 5, v5_subscribe(payload="0001 61 40"), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("subscribe-v5-reserved-bit-7", 5, v5_subscribe(payload="0001 61 81"), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("subscribe-311-reserved-bits", 4, frame(0x82, h("0001 0001 61 04")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("subscribe-311-qos-3", 4, frame(0x82, h("0001 0001 61 03")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("subscribe-filter-without-options", 4, frame(0x82, h("0001 0001 61")), MalformedPacket,
     RC.MALFORMED_PACKET),
    ("subscribe-two-subscription-identifiers", 5, v5_subscribe("0b 01 0b 02"),
     ProtocolViolation, RC.PROTOCOL_ERROR),
    ("subscribe-subscription-identifier-0", 5, v5_subscribe("0b 00"), ProtocolViolation,
     RC.PROTOCOL_ERROR),
    ("publish-subscription-identifier-0", 5, frame(0x30, h("0001 61 02 0b 00")),
     ProtocolViolation, RC.PROTOCOL_ERROR),
    ("subscription-identifier-5-byte-varint", 5, v5_subscribe("0b ff ff ff ff 01"),
     MalformedPacket, RC.MALFORMED_PACKET),
]


@pytest.mark.parametrize(
    ("level", "data", "exc", "reason"),
    [pytest.param(lv, data, exc, reason, id=name) for name, lv, data, exc, reason in CASES],
)
def test_malformed(level: int, data: bytes, exc: type[ProtocolViolation],
                   reason: ReasonCode) -> None:
    expect(data, exc, reason, level)


@pytest.mark.parametrize(("name", "level"), [("0004 4d515454", 6), ("0004 4d515454", 0),
                                             ("0004 4d515454", 3), ("0006 4d5149736470", 4)])
def test_unsupported_protocol_level(name: str, level: int) -> None:
    data = frame(0x10, connect_body(level, name=name))
    exc = expect(data, UnsupportedProtocolVersion, RC.UNSUPPORTED_PROTOCOL_VERSION)
    assert isinstance(exc, UnsupportedProtocolVersion)
    assert exc.level == level


def test_mqtt5_allows_password_without_username() -> None:
    data = frame(0x10, connect_body(5, flags=0x42, rest="0000 0001 70"))
    assert Decoder(5).feed(data) == [Connect("", 5, keepalive=60, password=b"p")]


def test_error_hierarchy() -> None:
    for cls in (MalformedPacket, PacketTooLarge, UnsupportedProtocolVersion):
        assert issubclass(cls, ProtocolViolation)
    assert ProtocolViolation("x").reason == RC.PROTOCOL_ERROR
    assert ProtocolViolation("x", RC.TOPIC_ALIAS_INVALID).reason == RC.TOPIC_ALIAS_INVALID


# ---- Packet size -----------------------------------------------------------------------------


def test_largest_remaining_length_is_accepted_and_buffered() -> None:
    decoder = Decoder()
    assert decoder.feed(h("30 ff ff ff 7f")) == []
    assert decoder.pending_header() == (0x30, 5 + 268_435_455)


def test_packet_too_large_is_raised_on_the_header() -> None:
    decoder = Decoder(max_packet_size=100)
    assert decoder.feed(b"\x30") == []
    assert decoder.feed(b"\x80") == []  # remaining length not complete yet
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(b"\x01")  # 128 bytes of body announced; none has arrived
    assert info.value.reason == RC.PACKET_TOO_LARGE


def test_packet_too_large_huge_declared_length() -> None:
    decoder = Decoder(max_packet_size=1024)
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(h("30 ff ff ff 7f"))
    assert info.value.reason == RC.PACKET_TOO_LARGE
    assert decoder.buffered == 0


def test_packet_size_limit_counts_the_whole_packet() -> None:
    packet = Publish("t", bytes(95))  # 1 + 1 + (2 + 1 + 95) = 100 bytes
    data = encode(packet, 4)
    assert len(data) == 100
    assert Decoder(max_packet_size=100).feed(data) == [packet]
    with pytest.raises(PacketTooLarge):
        Decoder(max_packet_size=99).feed(data)


def test_packet_too_large_keeps_preceding_packets() -> None:
    decoder = Decoder(max_packet_size=10)
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(h("c0 00 c0 00 30 20"))
    assert info.value.preceding == [Pingreq(), Pingreq()]


# ---- .preceding --------------------------------------------------------------------------------


def test_preceding_holds_packets_completed_in_the_same_feed() -> None:
    decoder = Decoder(4)
    publish = Publish("a", b"x", qos=1, packet_id=1)
    assert decoder.feed(h("c0 00")) == [Pingreq()]  # an earlier feed: not preceding
    first_half = encode(publish, 4)[:3]
    assert decoder.feed(first_half) == []
    with pytest.raises(MalformedPacket) as info:
        decoder.feed(encode(publish, 4)[3:] + h("c0 00 62 02 0000 c0 00"))
    assert info.value.preceding == [publish, Pingreq()]
    assert info.value.reason == RC.MALFORMED_PACKET
    assert decoder.buffered == 0


def test_preceding_is_empty_when_the_first_packet_is_bad() -> None:
    with pytest.raises(MalformedPacket) as info:
        Decoder(4).feed(h("c1 00 c0 00"))
    assert info.value.preceding == []


def test_preceding_includes_connect_that_changed_the_level() -> None:
    connect = Connect("c", protocol_level=5)
    # A 5.0 PUBACK with a reason code is fine after CONNECT switches the decoder to 5;
    # the AUTH that follows is legal too, but the PUBLISH with QoS 3 is not.
    data = encode(connect, 5) + h("40 03 0001 10 f0 00 36 00")
    with pytest.raises(MalformedPacket) as info:
        Decoder(4).feed(data)
    assert [type(p).__name__ for p in info.value.preceding] == ["Connect", "Puback", "Auth"]
