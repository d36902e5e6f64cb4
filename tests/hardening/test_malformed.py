"""Malformed input over real sockets, complementing tests/conversations/test_violations.py
and the malformed-CONNECT cases of test_connect.py: before CONNECT, inside CONNECT
fields that those do not reach, and after CONNECT in packets and properties they do not
cover. Each case closes only the offender, promptly (never by waiting for a timeout),
with the reason code of MQTT 5.0 section 4.13 for 5.0 and a plain close for 3.x, while
a bystander is served."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from roost.mqtt import Connack, ReasonCode
from roost.mqtt.encoder import frame, varint
from tests.broker import BrokerProcess, RawClient
from tests.hardening import Bystander, assert_closed, read_until_closed, unique


@pytest.fixture
def bystander(broker: BrokerProcess) -> Iterator[Bystander]:
    b = Bystander(broker.port, 4)
    yield b
    b.check()
    b.close()


def props(level: int, body: bytes = b"") -> bytes:
    """A property block where the level has one."""
    return varint(len(body)) + body if level == 5 else b""


def s(text: bytes) -> bytes:
    """A length-prefixed string field holding exactly ``text`` (valid or not)."""
    return len(text).to_bytes(2, "big") + text


def connect_packet(level: int, flags: int = 0x02, client_id: bytes = b"mal",
                   rest: bytes = b"", properties: bytes = b"", first: int = 0x10) -> bytes:
    name = b"MQIsdp" if level == 3 else b"MQTT"
    body = (s(name) + bytes((level, flags)) + b"\x00\x3c" + props(level, properties)
            + s(client_id) + rest)
    return frame(first, body)


def offender(client, level: int) -> RawClient:
    c = client(level)
    assert c.connect(unique("mal")).reason_code == ReasonCode.SUCCESS
    return c


def closed_promptly(c: RawClient) -> bytes:
    """What the broker sent before closing; it must close well before any timeout."""
    start = time.monotonic()
    data = read_until_closed(c, timeout=5.0)
    assert time.monotonic() - start < 2.0
    return data


# -- Before and instead of CONNECT ----------------------------------------------------------


@pytest.mark.parametrize("data", [
    frame(0x82, b"\x00\x01\x00\x03a/b\x00"),   # SUBSCRIBE
    b"\xe0\x00",                                # DISCONNECT
    frame(0x62, b"\x00\x01"),                   # PUBREL
    b"\x20\x02\x00\x00",                        # CONNACK
    b"\xf0\x00",                                # AUTH
], ids=["subscribe", "disconnect", "pubrel", "connack", "auth"])
def test_first_packet_not_connect(client, bystander, data):
    c = client(4)
    c.send_raw(data)
    assert closed_promptly(c) == b""


@pytest.mark.parametrize("data", [
    b"\x10\xff\xff\xff\xff\x01",                # remaining length in five bytes
    b"\x10" + varint(1_048_577),                # beyond max_packet_size, before any body
    b"\x10" + varint(268_435_455),              # the largest MQTT can declare
    b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n",  # HTTP on the MQTT port
    bytes.fromhex("16030100f4010000f00303") + b"\x00" * 40,  # a TLS ClientHello
    b"\x00" * 64,                               # packet type 0
], ids=["length-5-bytes", "beyond-maximum", "largest-declared", "http", "tls", "zeros"])
def test_garbage_before_connect(client, bystander, data):
    c = client(4)
    c.send_raw(data)
    assert closed_promptly(c) == b""


# -- Inside CONNECT --------------------------------------------------------------------------


def _will(topic: bytes, level: int) -> bytes:
    return props(level) + s(topic) + s(b"payload")


@pytest.mark.parametrize("case", [
    "header-flags", "surrogate-in-id", "invalid-utf8-user", "null-in-user",
    "invalid-utf8-will-topic", "null-in-will-topic", "user-flag-without-user",
])
def test_malformed_connect_fields(client, level, bystander, case):
    level_ = level
    data = {
        "header-flags": connect_packet(level_, first=0x12),
        "surrogate-in-id": connect_packet(level_, client_id=b"a\xed\xa0\x80"),
        "invalid-utf8-user": connect_packet(level_, 0x82, rest=s(b"\xff\xfe")),
        "null-in-user": connect_packet(level_, 0x82, rest=s(b"us\x00er")),
        "invalid-utf8-will-topic": connect_packet(level_, 0x06,
                                                  rest=_will(b"w/\xc3\x28", level_)),
        "null-in-will-topic": connect_packet(level_, 0x06, rest=_will(b"w/\x00", level_)),
        "user-flag-without-user": connect_packet(level_, 0x82),
    }[case]
    c = client(level_)
    c.send_raw(data)
    assert closed_promptly(c) == b""


@pytest.mark.parametrize("properties", [
    b"\x11\x00\x00\x00\x0a" * 2,       # Session Expiry Interval twice
    b"\x7f\x00",                        # an unknown property identifier
    b"\x23\x00\x01",                    # Topic Alias: not a CONNECT property
    b"\x21\x00\x00",                    # Receive Maximum 0
    b"\x27\x00\x00\x00\x00",            # Maximum Packet Size 0
    b"\x26\x00\x01k\x00\x02\xc3\x28",  # a User Property that is not UTF-8
], ids=["duplicate", "unknown", "not-allowed", "receive-max-0", "max-packet-0",
        "user-property-utf8"])
def test_malformed_connect_properties_v5(client, bystander, properties):
    c = client(5)
    c.send_raw(connect_packet(5, properties=properties))
    assert closed_promptly(c) == b""


def test_connect_property_length_beyond_packet_v5(client, bystander):
    c = client(5)
    body = s(b"MQTT") + b"\x05\x02\x00\x3c" + b"\x40" + b"\x11\x00\x00\x00\x0a" + s(b"id")
    c.send_raw(frame(0x10, body))
    assert closed_promptly(c) == b""


def test_will_topic_with_wildcard_refused(client, level, bystander):
    c = client(level)
    c.send_raw(connect_packet(level, 0x06, client_id=unique("mal-will").encode(),
                              rest=_will(b"w/+/x", level)))
    if level == 5:
        assert c.expect(Connack).reason_code == ReasonCode.TOPIC_NAME_INVALID
        assert c.expect_closed() == []
    else:
        # 3.1.1 cannot name the problem; the nearest return code, then close.
        assert closed_promptly(c) == b"\x20\x02\x00\x03"


# -- After CONNECT: packet identifiers, strings, options, properties --------------------------


@pytest.mark.parametrize("data", [
    frame(0x82, b"\x00\x00{props}\x00\x03a/b\x00"),  # SUBSCRIBE
    frame(0xA2, b"\x00\x00{props}\x00\x03a/b"),      # UNSUBSCRIBE
    frame(0x40, b"\x00\x00"),                          # PUBACK
    frame(0x50, b"\x00\x00"),                          # PUBREC
    frame(0x62, b"\x00\x00"),                          # PUBREL
    frame(0x70, b"\x00\x00"),                          # PUBCOMP
], ids=["subscribe", "unsubscribe", "puback", "pubrec", "pubrel", "pubcomp"])
def test_packet_identifier_zero(client, level, bystander, data):
    if b"{props}" in data:
        # The template has a placeholder where 5.0 has its property block.
        first, body = data[0], data[2:]
        data = frame(first, body.replace(b"{props}", props(level)))
    c = offender(client, level)
    c.send_raw(data)
    assert_closed(c, level, ReasonCode.MALFORMED_PACKET)


@pytest.mark.parametrize("topic_filter", [b"a/\xc3\x28", b"a/\xed\xa0\x80", b"a/\x00/b"],
                         ids=["invalid-utf8", "surrogate", "null"])
@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
def test_invalid_strings_in_filters(client, level, bystander, topic_filter, kind):
    c = offender(client, level)
    if kind == "subscribe":
        c.send_raw(frame(0x82, b"\x00\x01" + props(level) + s(topic_filter) + b"\x01"))
    else:
        c.send_raw(frame(0xA2, b"\x00\x01" + props(level) + s(topic_filter)))
    assert_closed(c, level, ReasonCode.MALFORMED_PACKET)


@pytest.mark.parametrize("options,reason", [
    (0xC1, ReasonCode.MALFORMED_PACKET),  # reserved bits 6-7
    (0x31, ReasonCode.PROTOCOL_ERROR),    # retain handling 3
], ids=["reserved-bits", "retain-handling-3"])
def test_subscription_options_v5(client, bystander, options, reason):
    c = offender(client, 5)
    c.send_raw(frame(0x82, b"\x00\x01\x00" + s(b"a/b") + bytes((options,))))
    assert_closed(c, 5, reason)


def test_subscription_options_reserved_bits_311(client, bystander):
    c = offender(client, 4)
    c.send_raw(frame(0x82, b"\x00\x01" + s(b"a/b") + b"\x05"))
    assert_closed(c, 4, ReasonCode.MALFORMED_PACKET)


@pytest.mark.parametrize("properties,reason", [
    (b"\x0b\x00", ReasonCode.PROTOCOL_ERROR),          # Subscription Identifier 0
    (b"\x0b\x01\x0b\x02", ReasonCode.PROTOCOL_ERROR),  # two Subscription Identifiers
    (b"\x7f\x01", ReasonCode.MALFORMED_PACKET),        # unknown property
], ids=["sub-id-0", "two-sub-ids", "unknown"])
def test_subscribe_properties_v5(client, bystander, properties, reason):
    c = offender(client, 5)
    c.send_raw(frame(0x82, b"\x00\x01" + varint(len(properties)) + properties
                     + s(b"a/b") + b"\x00"))
    assert_closed(c, 5, reason)


@pytest.mark.parametrize("body", [
    s(b"mal/p") + b"\x02\x7f\x00" + b"x",                  # unknown property identifier
    s(b"mal/p") + b"\x30\x01\x01" + b"x",                  # property length past the end
    s(b"mal/p") + b"\x06\x26\x00\x01k\x00\x01\xff" + b"x",  # User Property not UTF-8
    b"\x00\x40mal/p",                                      # topic length past the end
], ids=["unknown-property", "property-length", "user-property-utf8", "topic-length"])
def test_malformed_publish_v5(client, bystander, body):
    c = offender(client, 5)
    c.send_raw(frame(0x30, body))
    assert_closed(c, 5, ReasonCode.MALFORMED_PACKET)


def test_topic_length_past_the_end_311(client, bystander):
    c = offender(client, 4)
    c.send_raw(frame(0x30, b"\x00\x40mal/p"))
    assert_closed(c, 4, ReasonCode.MALFORMED_PACKET)


@pytest.mark.parametrize("data", [
    b"\xe0\x01\x03",           # DISCONNECT with an undefined reason code
    frame(0x40, b"\x00\x07\x03"),  # PUBACK with an undefined reason code
    b"\xc0\x01\x00",           # PINGREQ with a body
], ids=["disconnect-reason", "puback-reason", "pingreq-body"])
def test_malformed_small_packets_v5(client, bystander, data):
    c = offender(client, 5)
    c.send_raw(data)
    assert_closed(c, 5, ReasonCode.MALFORMED_PACKET)


def test_half_a_packet_then_hang_up(client, level, bystander):
    """A client that goes away mid-packet leaves nothing behind."""
    for _ in range(20):
        c = offender(client, level)
        c.send_raw(b"\x30" + varint(1000) + b"\x00\x05mal/h" + b"x" * 100)
        c.close()
