"""MQTT 5.0 features: session and message expiry, receive maximum, maximum packet size,
topic aliases, no local, forwarded PUBLISH properties, request/response and the
reason codes of server-initiated DISCONNECTs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from roost.mqtt import (
    Connack,
    Connect,
    Disconnect,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    ReasonCode,
    Suback,
    Subscribe,
    SubscriptionRequest,
)
from tests.broker import BrokerProcess, RawClient

OK = ReasonCode.SUCCESS
NEVER = 0xFFFFFFFF


def online(client, client_id: str, **kw) -> RawClient:
    c = client(5)
    ack = c.connect(client_id, **kw)
    assert ack.reason_code == OK
    return c


def expiring(seconds: int, **kw) -> Properties:
    return Properties(session_expiry_interval=seconds, **kw)


def disconnect(c: RawClient, props: Properties | None = None) -> None:
    """A normal DISCONNECT, returning once the broker has processed it (closed)."""
    c.send(Disconnect(properties=props or Properties()))
    assert c.expect_closed() == []


def reconnect(client, client_id: str, **kw) -> tuple[RawClient, Connack]:
    c = client(5)
    ack = c.connect(client_id, clean=False, **kw)
    assert ack.reason_code == OK
    return c, ack


def publish_qos1(c: RawClient, topic: str, payload: bytes, packet_id: int = 1,
                 properties: Properties | None = None) -> ReasonCode:
    c.publish(topic, payload, qos=1, packet_id=packet_id, properties=properties)
    ack = c.expect(Puback)
    assert ack.packet_id == packet_id
    return ack.reason_code  # type: ignore[attr-defined, no-any-return]


def server_disconnect(c: RawClient) -> ReasonCode:
    """The reason code of the DISCONNECT the broker sends before closing."""
    got = c.expect_closed()
    assert [type(p) for p in got] == [Disconnect], got
    return got[0].reason_code  # type: ignore[union-attr, no-any-return]


# -- Session Expiry Interval (3.1.2.11.2) ------------------------------------------------


def test_session_expiry_zero_ends_session_at_disconnect(client):
    c = online(client, "sx-zero")
    assert c.subscribe("sx/zero", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    disconnect(c)
    again, ack = reconnect(client, "sx-zero", properties=expiring(60))
    assert ack.session_present is False
    # The subscription went with the session.
    pub = online(client, "sx-zero-pub")
    assert publish_qos1(pub, "sx/zero", b"x") == ReasonCode.NO_MATCHING_SUBSCRIBERS
    disconnect(again, expiring(0))


def test_session_expiry_keeps_session_for_the_interval(client):
    c = online(client, "sx-one", properties=expiring(1))
    assert c.subscribe("sx/one", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    disconnect(c)

    again, ack = reconnect(client, "sx-one", properties=expiring(1))
    assert ack.session_present is True
    pub = online(client, "sx-one-pub")
    assert publish_qos1(pub, "sx/one", b"still subscribed") == OK
    msg = again.expect(Publish)
    assert (msg.payload, msg.qos) == (b"still subscribed", 1)
    again.send(Puback(msg.packet_id))  # type: ignore[arg-type]
    disconnect(again)

    time.sleep(1.2)
    last, ack = reconnect(client, "sx-one")
    assert ack.session_present is False
    assert publish_qos1(pub, "sx/one", b"x", 2) == ReasonCode.NO_MATCHING_SUBSCRIBERS


def test_session_expiry_never(client):
    c = online(client, "sx-never", properties=expiring(NEVER))
    c.close()  # an abnormal close keeps it as well
    time.sleep(0.2)
    again, ack = reconnect(client, "sx-never", properties=expiring(NEVER))
    assert ack.session_present is True
    disconnect(again, expiring(0))
    last, ack = reconnect(client, "sx-never")
    assert ack.session_present is False


def test_session_expiry_changed_on_disconnect(client):
    c = online(client, "sx-change", properties=expiring(60))
    disconnect(c, expiring(0))
    again, ack = reconnect(client, "sx-change", properties=expiring(0))
    assert ack.session_present is False
    disconnect(again)

    c = online(client, "sx-raise", properties=expiring(0))
    c.send(Disconnect(properties=expiring(60)))
    # Raising it from 0 at CONNECT is a Protocol Error (3.14.2.2.2).
    assert server_disconnect(c) == ReasonCode.PROTOCOL_ERROR
    again, ack = reconnect(client, "sx-raise")
    assert ack.session_present is False


# -- Message Expiry Interval (3.3.2.3.3) -------------------------------------------------


def test_message_expiry_forwarded_to_online_subscriber(client):
    sub = online(client, "mx-online")
    assert sub.subscribe("mx/online", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    pub = online(client, "mx-online-pub")
    publish_qos1(pub, "mx/online", b"a", properties=Properties(message_expiry_interval=30))
    msg = sub.expect(Publish)
    assert msg.properties.message_expiry_interval == 30
    sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]
    pub.publish("mx/online", b"b")
    assert sub.expect(Publish).properties.message_expiry_interval is None


def test_message_expiry_while_queued(client):
    sub = online(client, "mx-queued", properties=expiring(60))
    assert sub.subscribe("mx/queued", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    disconnect(sub)
    pub = online(client, "mx-queued-pub")
    for pid, (payload, expiry) in enumerate(((b"drop", 1), (b"keep", 2)), start=1):
        props = Properties(message_expiry_interval=expiry)
        assert publish_qos1(pub, "mx/queued", payload, pid, props) == OK
    time.sleep(1.2)

    again, ack = reconnect(client, "mx-queued", properties=expiring(0))
    assert ack.session_present is True
    msg = again.expect(Publish)
    # The expired one is dropped; the other's interval is reduced by the time it waited.
    assert (msg.payload, msg.qos) == (b"keep", 1)
    assert msg.properties.message_expiry_interval == 1
    again.send(Puback(msg.packet_id))  # type: ignore[arg-type]
    assert publish_qos1(pub, "mx/queued", b"sentinel", 3) == OK
    assert again.expect(Publish).payload == b"sentinel"


def test_message_expiry_zero_does_not_drop_the_message(client):
    """Mosquitto treats a Message Expiry Interval of 0 as no expiry."""
    sub = online(client, "mx-zero")
    assert sub.subscribe("mx/zero").reason_codes == [OK]
    pub = online(client, "mx-zero-pub")
    pub.publish("mx/zero", b"zero", properties=Properties(message_expiry_interval=0))
    pub.publish("mx/zero", b"sentinel")
    msg = sub.expect(Publish)
    assert (msg.payload, msg.properties.message_expiry_interval) == (b"zero", None)
    assert sub.expect(Publish).payload == b"sentinel"


# -- Receive Maximum (3.1.2.11.3, 3.2.2.3.3) ---------------------------------------------


@pytest.fixture(scope="module")
def small_receive_maximum() -> Iterator[BrokerProcess]:
    with BrokerProcess("[mqtt]\nreceive_maximum = 3\n") as proc:
        yield proc


def test_broker_receive_maximum_enforced(small_receive_maximum):
    c = RawClient(small_receive_maximum.port, 5)
    sub = RawClient(small_receive_maximum.port, 5)
    try:
        assert sub.connect("rm-watcher").reason_code == OK
        assert sub.subscribe("rm/#").reason_codes == [OK]
        ack = c.connect("rm-broker")
        assert ack.properties.receive_maximum == 3
        for pid in (1, 2, 3):
            c.publish("rm/x", b"q2", qos=2, packet_id=pid)
            assert c.expect(Pubrec).packet_id == pid
        c.send(Pubrel(1))
        assert c.expect(Pubcomp).packet_id == 1
        c.publish("rm/x", b"q2", qos=2, packet_id=4)
        assert c.expect(Pubrec).packet_id == 4
        # A fourth QoS 2 PUBLISH awaiting PUBREL is one more than the broker allows.
        c.publish("rm/x", b"excess", qos=2, packet_id=5)
        assert server_disconnect(c) == ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
        # The four accepted messages were routed; the one refused was not.
        assert [sub.expect(Publish).payload for _ in range(4)] == [b"q2"] * 4
        other = RawClient(small_receive_maximum.port, 5)
        assert other.connect("rm-sentinel").reason_code == OK
        other.publish("rm/end", b"sentinel")
        assert sub.expect(Publish).payload == b"sentinel"
        other.close()
    finally:
        c.close()
        sub.close()


def test_default_receive_maximum_advertised(client):
    c = client(5)
    ack = c.connect("rm-default")
    assert ack.properties.receive_maximum == 1024


def test_client_receive_maximum_limits_messages_in_flight(client):
    sub = online(client, "rm-client", properties=Properties(receive_maximum=2))
    assert sub.subscribe("rm/client", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    pub = online(client, "rm-client-pub")
    for i in range(5):
        publish_qos1(pub, "rm/client", f"m{i}".encode(), i + 1)
    first = [sub.expect(Publish) for _ in range(2)]
    assert [m.payload for m in first] == [b"m0", b"m1"]
    sub.expect_nothing(0.2)
    sub.send(Puback(first[0].packet_id))  # type: ignore[arg-type]
    third = sub.expect(Publish)
    assert third.payload == b"m2"
    sub.expect_nothing(0.1)
    sub.send(Puback(first[1].packet_id))  # type: ignore[arg-type]
    sub.send(Puback(third.packet_id))  # type: ignore[arg-type]
    assert [sub.expect(Publish).payload for _ in range(2)] == [b"m3", b"m4"]


# -- Maximum Packet Size (3.1.2.11.4) ----------------------------------------------------


def test_maximum_packet_size_of_client_respected(client):
    sub = online(client, "mps-sub", properties=Properties(maximum_packet_size=100))
    assert sub.subscribe("mps/x", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    pub = online(client, "mps-pub")
    pub.publish("mps/x", b"L" * 200)
    publish_qos1(pub, "mps/x", b"L" * 200, 1)
    publish_qos1(pub, "mps/x", b"small", 2)
    # Oversized messages are dropped for this client, the small one still arrives.
    msg = sub.expect(Publish)
    assert (msg.payload, msg.qos) == (b"small", 1)
    sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]
    # At QoS 0: fixed header 2 + topic 2+5 + property length 1 + payload bytes.
    pub.publish("mps/x", b"y" * 91)  # 101 bytes: one too many
    pub.publish("mps/x", b"z" * 90)  # exactly 100 bytes: fits
    assert sub.expect(Publish).payload == b"z" * 90


def test_broker_advertises_maximum_packet_size(client):
    ack = client(5).connect("mps-advertised")
    assert ack.properties.maximum_packet_size == 1_048_576


# -- Topic aliases (3.3.2.3.4) -----------------------------------------------------------


def test_topic_alias_from_client(client):
    sub = online(client, "ta-in-sub")
    assert sub.subscribe("ta/in/+").reason_codes == [OK]
    pub = client(5)
    ack = pub.connect("ta-in-pub")
    assert ack.properties.topic_alias_maximum == 32
    pub.publish("ta/in/a", b"1", properties=Properties(topic_alias=1))
    pub.publish("", b"2", properties=Properties(topic_alias=1))
    pub.publish("ta/in/b", b"3", properties=Properties(topic_alias=1))  # remapped
    pub.publish("", b"4", properties=Properties(topic_alias=1))
    pub.publish("ta/in/c", b"5", properties=Properties(topic_alias=32))
    pub.publish("", b"6", properties=Properties(topic_alias=32))
    got = [sub.expect(Publish) for _ in range(6)]
    assert [(m.topic, m.payload) for m in got] == [
        ("ta/in/a", b"1"), ("ta/in/a", b"2"), ("ta/in/b", b"3"), ("ta/in/b", b"4"),
        ("ta/in/c", b"5"), ("ta/in/c", b"6")]
    # The subscriber did not allow aliases, so none is sent to it.
    assert all(m.properties.topic_alias is None for m in got)


@pytest.mark.parametrize(("alias", "topic", "reason"), [
    (0, "ta/bad", ReasonCode.TOPIC_ALIAS_INVALID),
    (33, "ta/bad", ReasonCode.TOPIC_ALIAS_INVALID),
    (5, "", ReasonCode.PROTOCOL_ERROR),  # never set on this connection
])
def test_invalid_topic_alias_from_client(client, alias, topic, reason):
    c = online(client, f"ta-bad-{alias}")
    c.publish(topic, b"x", properties=Properties(topic_alias=alias))
    assert server_disconnect(c) == reason


def test_topic_alias_not_carried_to_a_new_connection(client):
    c = online(client, "ta-scope")
    c.publish("ta/scope", b"x", properties=Properties(topic_alias=3))
    disconnect(c)
    c = online(client, "ta-scope")
    c.publish("", b"x", properties=Properties(topic_alias=3))
    assert server_disconnect(c) == ReasonCode.PROTOCOL_ERROR


def test_topic_alias_to_client(client):
    sub = online(client, "ta-out-sub", properties=Properties(topic_alias_maximum=2))
    assert sub.subscribe("ta/out/+", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    pub = online(client, "ta-out-pub")
    for i, topic in enumerate(["ta/out/a", "ta/out/a", "ta/out/b", "ta/out/a", "ta/out/b",
                               "ta/out/c", "ta/out/c"], start=1):
        publish_qos1(pub, topic, f"{i}".encode(), i)
    got = []
    for _ in range(7):
        msg = sub.expect(Publish)
        sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]
        got.append((msg.topic, msg.properties.topic_alias, msg.payload))
    assert got == [
        ("ta/out/a", 1, b"1"),  # alias set together with the topic
        ("", 1, b"2"),          # then the alias alone
        ("ta/out/b", 2, b"3"),
        ("", 1, b"4"),
        ("", 2, b"5"),
        ("ta/out/c", None, b"6"),  # no alias left within the client's maximum
        ("ta/out/c", None, b"7"),
    ]


def test_topic_alias_not_spent_on_a_message_too_large_to_send(client):
    sub = online(client, "ta-large-sub",
                 properties=Properties(topic_alias_maximum=1, maximum_packet_size=100))
    assert sub.subscribe("ta/large").reason_codes == [OK]
    pub = online(client, "ta-large-pub")
    for payload in (b"L" * 200, b"small", b"again"):
        pub.publish("ta/large", payload)
    # The dropped message did not use up the alias: the first one delivered sets it.
    got = [sub.expect(Publish) for _ in range(2)]
    assert [(m.topic, m.properties.topic_alias, m.payload) for m in got] == [
        ("ta/large", 1, b"small"), ("", 1, b"again")]


def test_no_topic_alias_to_client_that_did_not_allow_them(client):
    sub = online(client, "ta-none-sub")
    assert sub.subscribe("ta/none").reason_codes == [OK]
    pub = online(client, "ta-none-pub")
    pub.publish("ta/none", b"1")
    pub.publish("ta/none", b"2")
    for payload in (b"1", b"2"):
        msg = sub.expect(Publish)
        assert (msg.topic, msg.properties.topic_alias, msg.payload) == ("ta/none", None, payload)


# -- No Local (3.8.3.1) ------------------------------------------------------------------


def test_no_local(client):
    me = online(client, "nl-me")
    me.send(Subscribe(1, [SubscriptionRequest("nl/x", 0, no_local=True)]))
    assert me.expect(Suback).reason_codes == [OK]
    other = online(client, "nl-other")
    assert other.subscribe("nl/x").reason_codes == [OK]

    me.publish("nl/x", b"mine")
    assert other.expect(Publish).payload == b"mine"
    other.publish("nl/x", b"theirs")
    msg = me.expect(Publish)  # not its own message first
    assert msg.payload == b"theirs"
    assert other.expect(Publish).payload == b"theirs"


def test_no_local_with_overlapping_local_subscription(client):
    me = online(client, "nl-overlap")
    me.send(Subscribe(1, [SubscriptionRequest("nl/o/+", 0, no_local=True),
                          SubscriptionRequest("nl/o/#", 1)]))
    assert me.expect(Suback).reason_codes == [OK, ReasonCode.GRANTED_QOS_1]
    # The subscription without No Local still delivers the client's own message.
    me.publish("nl/o/a", b"own", qos=1, packet_id=9)
    got = sorted((me.recv(), me.recv()), key=lambda p: type(p).__name__)
    assert [type(p) for p in got] == [Puback, Publish]
    assert got[0].packet_id == 9  # type: ignore[union-attr]
    assert (got[1].payload, got[1].qos) == (b"own", 1)  # type: ignore[union-attr]


def test_no_local_on_shared_subscription_is_a_protocol_error(client):
    c = online(client, "nl-shared")
    c.send(Subscribe(1, [SubscriptionRequest("$share/g/nl/s", 0, no_local=True)]))
    assert server_disconnect(c) == ReasonCode.PROTOCOL_ERROR


# -- Properties forwarded with PUBLISH (3.3.2.3) -----------------------------------------


def test_publish_properties_forwarded_unaltered(client):
    sub = online(client, "props-sub")
    assert sub.subscribe("props/x", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    old = client(4)
    assert old.connect("props-sub-311").reason_code == OK
    assert old.subscribe("props/x").reason_codes == [OK]
    pub = online(client, "props-pub")
    props = Properties(payload_format_indicator=1, content_type="application/json",
                       response_topic="props/reply", correlation_data=b"\xff\x00id",
                       user_properties=[("b", "2"), ("a", "1"), ("b", "2"), ("é", "ü")])
    assert publish_qos1(pub, "props/x", b'{"v": 1}', properties=props) == OK
    msg = sub.expect(Publish)
    p = msg.properties
    assert msg.payload == b'{"v": 1}'
    assert p.payload_format_indicator == 1
    assert p.content_type == "application/json"
    assert p.response_topic == "props/reply"
    assert p.correlation_data == b"\xff\x00id"
    # Order and duplicates are kept (3.3.2.3.7).
    assert p.user_properties == [("b", "2"), ("a", "1"), ("b", "2"), ("é", "ü")]
    assert p.message_expiry_interval is None and p.topic_alias is None
    assert p.subscription_identifiers == []
    # A 3.1.1 subscriber gets the same message without properties.
    assert old.expect(Publish).payload == b'{"v": 1}'


def test_payload_format_invalid(client):
    sub = online(client, "pfi-sub")
    assert sub.subscribe("pfi/x").reason_codes == [OK]
    pub = online(client, "pfi-pub")
    bad = Properties(payload_format_indicator=1)
    assert publish_qos1(pub, "pfi/x", b"\xff\xfe not utf-8", 1, bad) == \
        ReasonCode.PAYLOAD_FORMAT_INVALID
    # Not UTF-8 but declared unspecified bytes: fine.
    assert publish_qos1(pub, "pfi/x", b"\xff\xfe", 2,
                        Properties(payload_format_indicator=0)) == OK
    msg = sub.expect(Publish)
    assert (msg.payload, msg.properties.payload_format_indicator) == (b"\xff\xfe", 0)


def test_no_matching_subscribers(client):
    pub = online(client, "nms-pub")
    assert publish_qos1(pub, "nms/nobody", b"x") == ReasonCode.NO_MATCHING_SUBSCRIBERS
    pub.publish("nms/nobody", b"x", qos=2, packet_id=2)
    ack = pub.expect(Pubrec)
    assert (ack.packet_id, ack.reason_code) == (2, ReasonCode.NO_MATCHING_SUBSCRIBERS)
    pub.send(Pubrel(2))
    assert pub.expect(Pubcomp).reason_code == OK


# -- Request / response (4.10) ------------------------------------------------------------


def test_response_information_only_when_requested(client):
    ack = client(5).connect("rr-asks",
                            properties=Properties(request_response_information=1))
    assert ack.properties.response_information == "roost/response/rr-asks"
    ack = client(5).connect("rr-silent")
    assert ack.properties.response_information is None
    ack = client(5).connect("rr-declines",
                            properties=Properties(request_response_information=0))
    assert ack.properties.response_information is None


def test_request_response_round_trip(client):
    requester = client(5)
    ack = requester.connect("rr-requester",
                            properties=Properties(request_response_information=1))
    reply_to = f"{ack.properties.response_information}/replies"
    assert requester.subscribe(reply_to).reason_codes == [OK]
    responder = online(client, "rr-responder")
    assert responder.subscribe("rr/service").reason_codes == [OK]

    requester.publish("rr/service", b"question", properties=Properties(
        response_topic=reply_to, correlation_data=b"req-1"))
    request = responder.expect(Publish)
    assert request.properties.response_topic == reply_to
    responder.publish(request.properties.response_topic, b"answer", properties=Properties(
        correlation_data=request.properties.correlation_data))
    reply = requester.expect(Publish)
    assert (reply.topic, reply.payload, reply.properties.correlation_data) == (
        reply_to, b"answer", b"req-1")


# -- Server-initiated DISCONNECT (3.14) ---------------------------------------------------


def test_server_disconnect_on_takeover(client):
    first = online(client, "dc-takeover")
    second = online(client, "dc-takeover")
    assert server_disconnect(first) == ReasonCode.SESSION_TAKEN_OVER
    second.send(Disconnect())


def test_server_disconnect_on_protocol_errors(client):
    c = online(client, "dc-second-connect")
    c.send(Connect("dc-second-connect", 5))
    assert server_disconnect(c) == ReasonCode.PROTOCOL_ERROR

    c = online(client, "dc-subid")
    c.publish("dc/x", b"x", properties=Properties(subscription_identifiers=[1]))
    assert server_disconnect(c) == ReasonCode.PROTOCOL_ERROR


def test_server_disconnect_on_keepalive_timeout(client):
    c = online(client, "dc-keepalive", keepalive=1)
    assert server_disconnect(c) == ReasonCode.KEEP_ALIVE_TIMEOUT
