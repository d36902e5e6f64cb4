"""Protocol violations: each closes only the offending connection, with a DISCONNECT
carrying the right reason code for 5.0 (MQTT 5.0 section 4.13) and a plain close for
3.1.1 (MQTT 3.1.1 section 4.8), while a healthy client on the same broker carries on."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from roost.mqtt import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Properties,
    Puback,
    Publish,
    Pubrec,
    ReasonCode,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Will,
    encode,
)
from roost.mqtt.encoder import frame
from tests.broker import BrokerProcess, RawClient

_ids = itertools.count(1)


class Healthy:
    """A well-behaved client, subscribed to its own topic, connected before the
    violation and checked after it."""

    def __init__(self, c: RawClient) -> None:
        n = next(_ids)
        self.c = c
        self.topic = f"vio/healthy/{n}"
        assert c.connect(f"vio-healthy-{n}").reason_code == ReasonCode.SUCCESS
        assert c.subscribe(self.topic, qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
        self.sent = 0

    def check(self) -> None:
        """Still connected, still publishing and receiving."""
        for _ in range(2):
            self.sent += 1
            payload = f"alive {self.sent}".encode()
            self.c.publish(self.topic, payload, qos=1, packet_id=self.sent)
            got = [self.c.recv(), self.c.recv()]
            acks = [p for p in got if isinstance(p, Puback)]
            msgs = [p for p in got if isinstance(p, Publish)]
            assert len(acks) == 1 and len(msgs) == 1, got
            assert (acks[0].packet_id, acks[0].reason_code) == (self.sent, ReasonCode.SUCCESS)
            assert (msgs[0].topic, msgs[0].payload, msgs[0].qos) == (self.topic, payload, 1)
            self.c.send(Puback(msgs[0].packet_id))
        self.c.expect_nothing(0.05)


@pytest.fixture
def healthy(client) -> Callable[[int], Healthy]:
    return lambda level: Healthy(client(level))


def offender(client, level: int) -> RawClient:
    c = client(level)
    assert c.connect(f"vio-bad-{next(_ids)}").reason_code == ReasonCode.SUCCESS
    return c


def assert_closed(c: RawClient, level: int, reason: ReasonCode) -> None:
    """The broker closed ``c``: DISCONNECT with ``reason`` first for 5.0, nothing for 3.x."""
    got = c.expect_closed()
    if level == 5:
        assert got == [Disconnect(reason)], got
    else:
        assert got == [], got


def props(level: int) -> bytes:
    """An empty property block where the level has one."""
    return b"\x00" if level == 5 else b""


def raw_publish(topic: bytes, level: int, payload: bytes = b"x", first: int = 0x30,
                packet_id: bytes = b"") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + packet_id + props(level) + payload
    return frame(first, body)


# -- PUBLISH ------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["vio/+", "vio/#", "+", "#", "vio/a+b"],
                         ids=["plus", "hash", "lone-plus", "lone-hash", "embedded-plus"])
def test_publish_wildcard_topic(client, level, healthy, topic):
    ok = healthy(level)
    bad = offender(client, level)
    bad.publish(topic, b"x")
    assert_closed(bad, level, ReasonCode.TOPIC_NAME_INVALID)
    ok.check()


def test_publish_wildcard_topic_qos1_not_acked(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.publish("vio/+/x", b"x", qos=1, packet_id=1)
    assert_closed(bad, level, ReasonCode.TOPIC_NAME_INVALID)
    ok.check()


def test_publish_empty_topic_without_alias(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.publish("", b"x")
    # 5.0 3.3.2.3.4: a zero-length Topic Name without a Topic Alias is a Protocol Error.
    assert_closed(bad, level, ReasonCode.PROTOCOL_ERROR)
    ok.check()


def test_publish_qos3(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(raw_publish(b"vio/q3", level, first=0x36, packet_id=b"\x00\x01"))
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_publish_dup_at_qos0(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(raw_publish(b"vio/dup0", level, first=0x38))
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_publish_packet_id_zero(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(raw_publish(b"vio/pid0", level, first=0x32, packet_id=b"\x00\x00"))
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


@pytest.mark.parametrize("topic", [b"vio/\xc3\x28", b"vio/\xed\xa0\x80", b"\xff\xfe",
                                   b"vio/\xc0\xaf"],
                         ids=["bad-continuation", "surrogate", "invalid-bytes", "overlong"])
def test_publish_invalid_utf8_topic(client, level, healthy, topic):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(raw_publish(topic, level))
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_publish_null_character_in_topic(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(raw_publish(b"vio/a\x00b", level))
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


@pytest.mark.parametrize("alias", [0, 33, 65535], ids=["zero", "above-max", "u16-max"])
def test_topic_alias_out_of_range_v5(client, healthy, alias):
    ok = healthy(5)
    bad = offender(client, 5)
    bad.publish("vio/alias", b"x", properties=Properties(topic_alias=alias))
    assert_closed(bad, 5, ReasonCode.TOPIC_ALIAS_INVALID)
    ok.check()


def test_topic_alias_maximum_is_usable_v5(client, healthy):
    """Control for the above: alias 32 (the advertised maximum) works, and an alias
    set once stands for its topic."""
    ok = healthy(5)
    c = offender(client, 5)
    c.subscribe("vio/alias-ok/#")
    c.publish("vio/alias-ok/a", b"1", properties=Properties(topic_alias=32))
    c.publish("", b"2", properties=Properties(topic_alias=32))
    got = [c.expect(Publish), c.expect(Publish)]
    assert [(m.topic, m.payload) for m in got] == [("vio/alias-ok/a", b"1"),
                                                   ("vio/alias-ok/a", b"2")]
    ok.check()


def test_unknown_topic_alias_with_empty_topic_v5(client, healthy):
    ok = healthy(5)
    bad = offender(client, 5)
    bad.publish("", b"x", properties=Properties(topic_alias=5))
    assert_closed(bad, 5, ReasonCode.PROTOCOL_ERROR)
    ok.check()


def test_publish_with_subscription_identifier_v5(client, healthy):
    ok = healthy(5)
    bad = offender(client, 5)
    bad.publish("vio/subid", b"x", properties=Properties(subscription_identifiers=[3]))
    assert_closed(bad, 5, ReasonCode.PROTOCOL_ERROR)
    ok.check()


def test_publish_property_not_allowed_v5(client, healthy):
    ok = healthy(5)
    bad = offender(client, 5)
    # Session Expiry Interval (0x11) has no place in a PUBLISH.
    body = b"\x00\x08vio/prop" + b"\x05\x11\x00\x00\x00\x0a" + b"x"
    bad.send_raw(frame(0x30, body))
    assert_closed(bad, 5, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_publish_duplicate_property_v5(client, healthy):
    ok = healthy(5)
    bad = offender(client, 5)
    # Content Type (0x03) twice.
    body = b"\x00\x08vio/prop" + b"\x08\x03\x00\x01a\x03\x00\x01b" + b"x"
    bad.send_raw(frame(0x30, body))
    assert_closed(bad, 5, ReasonCode.PROTOCOL_ERROR)
    ok.check()


# -- SUBSCRIBE ------------------------------------------------------------------------------


def test_subscribe_with_no_filters(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(frame(0x82, b"\x00\x01" + props(level)))
    assert_closed(bad, level, ReasonCode.PROTOCOL_ERROR)
    ok.check()


def test_unsubscribe_with_no_filters(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(frame(0xA2, b"\x00\x01" + props(level)))
    assert_closed(bad, level, ReasonCode.PROTOCOL_ERROR)
    ok.check()


def test_subscribe_qos3(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(frame(0x82, b"\x00\x01" + props(level) + b"\x00\x05vio/s\x03"))
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_no_local_on_shared_subscription_v5(client, healthy):
    ok = healthy(5)
    bad = offender(client, 5)
    bad.send(Subscribe(1, [SubscriptionRequest("$share/g/vio/nl", 1, no_local=True)]))
    assert_closed(bad, 5, ReasonCode.PROTOCOL_ERROR)
    ok.check()


@pytest.mark.parametrize("topic_filter", ["a/#/b", "a/b#", "a+/b", "#/a", "$share/g",
                                          "$share//a", "$share/g+/a"])
def test_subscribe_invalid_filter_refused_in_suback(client, level, healthy, topic_filter):
    ok = healthy(level)
    c = offender(client, level)
    c.send(Subscribe(7, [SubscriptionRequest("vio/valid/+", 1),
                         SubscriptionRequest(topic_filter, 1)]))
    ack = c.expect(Suback)
    assert ack.packet_id == 7
    # 3.1.1 has only 0x80 Failure; 5.0 says why.
    failure = ReasonCode.TOPIC_FILTER_INVALID if level == 5 else ReasonCode.UNSPECIFIED_ERROR
    assert ack.reason_codes == [ReasonCode.GRANTED_QOS_1, failure]
    # Not a reason to close: the connection and the valid filter still work.
    c.publish("vio/valid/x", b"still open", qos=1, packet_id=3)
    got = [c.recv(), c.recv()]
    assert sorted(type(p).__name__ for p in got) == ["Puback", "Publish"]
    ok.check()


def test_suback_failure_bytes_311(client, healthy):
    ok = healthy(4)
    c = offender(client, 4)
    c.send(Subscribe(9, [SubscriptionRequest("a/#/b", 0)]))
    assert c.sock.recv(5) == b"\x90\x03\x00\x09\x80"
    ok.check()


# -- Fixed header -------------------------------------------------------------------------


def _reserved_flag_packets(level: int) -> list[bytes]:
    return [
        frame(0x80, b"\x00\x01" + props(level) + b"\x00\x05vio/r\x00"),  # SUBSCRIBE, 0 not 2
        frame(0xA0, b"\x00\x01" + props(level) + b"\x00\x05vio/r"),  # UNSUBSCRIBE
        frame(0x60, b"\x00\x01"),  # PUBREL, 0 not 2
        frame(0x42, b"\x00\x01"),  # PUBACK with a flag
        b"\xc1\x00",  # PINGREQ with a flag
        b"\xe2\x00",  # DISCONNECT with a flag
    ]


@pytest.mark.parametrize("index", range(6), ids=["subscribe", "unsubscribe", "pubrel",
                                                 "puback", "pingreq", "disconnect"])
def test_reserved_flags(client, level, healthy, index):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(_reserved_flag_packets(level)[index])
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_packet_type_zero(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(b"\x00\x00")
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_remaining_length_over_four_bytes(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(b"\x30\xff\xff\xff\xff\x01")
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_declared_size_over_maximum(client, level, healthy):
    """A header declaring 256 MB is refused before any body arrives."""
    ok = healthy(level)
    bad = offender(client, level)
    bad.send_raw(b"\x30\xff\xff\xff\x7f")
    assert_closed(bad, level, ReasonCode.PACKET_TOO_LARGE)
    ok.check()


def test_packet_split_across_writes_is_fine(client, level, healthy):
    """Control: the checks above are about content, not about how bytes arrive."""
    ok = healthy(level)
    c = offender(client, level)
    c.subscribe("vio/split")
    data = raw_publish(b"vio/split", level, b"in pieces")
    for i in range(len(data)):
        c.send_raw(data[i:i + 1])
    msg = c.expect(Publish)
    assert (msg.topic, msg.payload) == ("vio/split", b"in pieces")
    ok.check()


# -- Maximum packet size --------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_broker() -> Iterator[BrokerProcess]:
    with BrokerProcess("[mqtt]\nmax_packet_size = 1024\nreceive_maximum = 2\n") as proc:
        yield proc


@pytest.fixture
def small_client(small_broker) -> Iterator[Callable[[int], RawClient]]:
    made: list[RawClient] = []

    def make(level: int) -> RawClient:
        c = RawClient(small_broker.port, level)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_packet_over_maximum_size(small_client, level):
    ok = Healthy(small_client(level))
    c = small_client(level)
    ack = c.connect(f"vio-big-{level}")
    if level == 5:
        assert ack.properties.maximum_packet_size == 1024
        assert ack.properties.receive_maximum == 2
    c.subscribe("vio/big")
    # 1024 bytes in all (header 3, topic 9, properties 1 for 5.0): accepted.
    fits = raw_publish(b"vio/big", level, b"a" * (1024 - 3 - 9 - len(props(level))))
    assert len(fits) == 1024
    c.send_raw(fits)
    assert len(c.expect(Publish).payload) == 1024 - 12 - len(props(level))
    # One byte more: too large.
    too_big = raw_publish(b"vio/big", level, b"a" * (1025 - 3 - 9 - len(props(level))))
    assert len(too_big) == 1025
    c.send_raw(too_big)
    assert_closed(c, level, ReasonCode.PACKET_TOO_LARGE)
    ok.check()


# -- DISCONNECT and AUTH --------------------------------------------------------------------


def test_disconnect_session_expiry_after_zero_v5(client, healthy):
    ok = healthy(5)
    bad = offender(client, 5)  # session expiry absent, that is 0
    bad.send(Disconnect(ReasonCode.SUCCESS, Properties(session_expiry_interval=60)))
    assert_closed(bad, 5, ReasonCode.PROTOCOL_ERROR)
    ok.check()


def test_disconnect_session_expiry_zero_after_zero_is_fine_v5(client, healthy):
    ok = healthy(5)
    c = offender(client, 5)
    c.send(Disconnect(ReasonCode.SUCCESS, Properties(session_expiry_interval=0)))
    assert c.expect_closed() == []
    ok.check()


def test_auth_packet(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    if level == 5:
        bad.send(Auth(ReasonCode.REAUTHENTICATE, Properties(authentication_method="PLAIN")))
        # No authentication method at CONNECT: AUTH is a Protocol Error (4.12).
        assert_closed(bad, level, ReasonCode.PROTOCOL_ERROR)
    else:
        bad.send_raw(b"\xf0\x00")  # no AUTH packet before 5.0
        assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()


def test_server_only_packets_from_client(client, level, healthy):
    """CONNACK, SUBACK, UNSUBACK and PINGRESP are not for a client to send."""
    ok = healthy(level)
    for data in (b"\x20\x02\x00\x00", b"\xd0\x00"):
        bad = offender(client, level)
        bad.send_raw(data)
        assert_closed(bad, level, ReasonCode.PROTOCOL_ERROR)
    ok.check()


def test_violation_ends_clean_session(client, level, healthy):
    """After a violation the broker forgets a clean session (its subscriptions too)."""
    ok = healthy(level)
    bad = client(level)
    bad.connect("vio-forgotten-" + str(level))
    bad.subscribe("vio/forgotten", qos=1)
    bad.publish("vio/#", b"x")
    bad.expect_closed()
    again = client(level)
    assert again.connect("vio-forgotten-" + str(level), clean=False).session_present is False
    ok.check()


def test_receive_maximum_exceeded_v5(small_client):
    ok = Healthy(small_client(5))
    watcher = small_client(5)
    watcher.connect("vio-recvmax-watcher")
    watcher.subscribe("vio/recvmax")
    bad = small_client(5)
    bad.connect("vio-recvmax-bad")
    for pid in (1, 2):
        bad.publish("vio/recvmax", f"m{pid}".encode(), qos=2, packet_id=pid)
        assert bad.expect(Pubrec).packet_id == pid
    # A third QoS 2 message while two await PUBREL: more than Receive Maximum (3.3.4).
    bad.publish("vio/recvmax", b"m3", qos=2, packet_id=3)
    assert_closed(bad, 5, ReasonCode.RECEIVE_MAXIMUM_EXCEEDED)
    # The offending message is not delivered.
    assert [watcher.expect(Publish).payload for _ in range(2)] == [b"m1", b"m2"]
    watcher.expect_nothing(0.2)
    ok.check()


# -- What happens around a violation ---------------------------------------------------------


def test_packets_before_violation_in_same_write_are_handled(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    good = encode(Publish(ok.topic, b"before the violation"), level)
    bad.send_raw(good + raw_publish(b"vio/q3", level, first=0x36, packet_id=b"\x00\x01"))
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    msg = ok.c.expect(Publish)
    assert (msg.topic, msg.payload) == (ok.topic, b"before the violation")
    ok.check()


def test_packets_after_violation_in_same_write_are_ignored(client, level, healthy):
    ok = healthy(level)
    bad = offender(client, level)
    after = encode(Publish(ok.topic, b"after the violation"), level)
    bad.send_raw(raw_publish(b"vio/q3", level, first=0x36, packet_id=b"\x00\x01") + after)
    assert_closed(bad, level, ReasonCode.MALFORMED_PACKET)
    ok.check()  # would see the extra PUBLISH


def test_topic_alias_does_not_survive_reconnect_v5(client, healthy):
    ok = healthy(5)
    cid = "vio-alias-reconnect"
    c = client(5)
    c.connect(cid, clean=False, properties=Properties(session_expiry_interval=60))
    c.publish("vio/alias-reconnect", b"x", properties=Properties(topic_alias=1))
    c.disconnect()
    c = client(5)
    assert c.connect(cid, clean=False,
                     properties=Properties(session_expiry_interval=60)).session_present
    c.publish("", b"x", properties=Properties(topic_alias=1))
    assert_closed(c, 5, ReasonCode.PROTOCOL_ERROR)
    ok.check()


def test_will_published_after_violation(client, level, healthy):
    ok = healthy(level)
    watcher = client(level)
    watcher.connect(f"vio-will-watcher-{level}")
    watcher.subscribe(f"vio/will/{level}", qos=1)
    bad = client(level)
    bad.connect(f"vio-will-bad-{level}", will=Will(f"vio/will/{level}", b"gone", 1))
    bad.publish("vio/#", b"x")
    assert_closed(bad, level, ReasonCode.TOPIC_NAME_INVALID)
    msg = watcher.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos) == (f"vio/will/{level}", b"gone", 1)
    ok.check()


def test_violation_right_after_connect_in_same_write(client, level, healthy):
    ok = healthy(level)
    bad = client(level)
    bad.send_raw(encode(Connect(f"vio-eager-{level}", level), level)
                 + raw_publish(b"vio/q3", level, first=0x36, packet_id=b"\x00\x01"))
    got = bad.expect_closed()
    assert [type(p) for p in got][:1] == [Connack]
    assert got[0].reason_code == ReasonCode.SUCCESS
    assert got[1:] == ([Disconnect(ReasonCode.MALFORMED_PACKET)] if level == 5 else [])
    ok.check()
