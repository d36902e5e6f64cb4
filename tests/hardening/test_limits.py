"""Every configured limit, breached over a real socket: the offender gets the documented
reason code (docs/limits.md), the breach is counted by name and logged once for the
connection, and a bystander on the same broker is served throughout."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from roost.mqtt import (
    Connack,
    Connect,
    Properties,
    Puback,
    Publish,
    Pubrec,
    ReasonCode,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)
from roost.mqtt.encoder import frame, varint
from tests.broker import BrokerProcess, RawClient
from tests.hardening import (
    Bystander,
    assert_closed,
    breaches,
    is_closed_now,
    read_until_closed,
    unique,
    wait_for_breach,
)

LIMITS = """
[store]
type = "memory"

[mqtt]
max_packet_size = 4096
receive_maximum = 2
max_keepalive = 100
max_queued_messages = 5
max_topic_levels = 8
max_topic_length = 64
max_subscriptions = 4
max_client_id_length = 32
max_user_properties = 4
"""


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess(LIMITS) as proc:
        yield proc


@pytest.fixture
def bystander(broker: BrokerProcess) -> Iterator[Bystander]:
    b = Bystander(broker.port, 5)
    yield b
    b.check()
    b.close()


def connected(client: Callable[[int], RawClient], level: int, prefix: str = "lim",
              **kw: object) -> tuple[RawClient, str]:
    c = client(level)
    cid = unique(prefix)
    ack = c.connect(cid, **kw)  # type: ignore[arg-type]
    assert ack.reason_code == ReasonCode.SUCCESS
    return c, cid


def failure(level: int, reason: ReasonCode) -> ReasonCode:
    """A SUBACK failure as the level can say it (3.1.1 has only 0x80)."""
    return reason if level == 5 else ReasonCode.UNSPECIFIED_ERROR


def user_props(n: int) -> Properties:
    return Properties(user_properties=[(f"k{i}", "v") for i in range(n)])


# -- max_packet_size --------------------------------------------------------------------


def test_packet_size_after_connect(client, level, bystander, broker):
    c, cid = connected(client, level)
    c.subscribe("lim/size")
    overhead = 2 + 8 + (1 if level == 5 else 0)  # topic field + properties
    fits = encode(Publish("lim/size", b"a" * (4096 - 3 - overhead)), level)
    assert len(fits) == 4096
    c.send_raw(fits)
    assert len(c.expect(Publish).payload) == 4096 - 3 - overhead
    c.send_raw(encode(Publish("lim/size", b"a" * (4097 - 3 - overhead)), level))
    assert_closed(c, level, ReasonCode.PACKET_TOO_LARGE)
    line, _ = wait_for_breach(broker, "max_packet_size", cid)
    assert "4097 bytes" in line


def test_declared_size_before_connect_closes_at_once(client, bystander, broker):
    """A header declaring 200 MB is refused on its own: no body is awaited, no CONNECT
    timeout is needed, nothing is answered."""
    c = client(4)
    port = c.sock.getsockname()[1]
    start = time.monotonic()
    c.send_raw(b"\x10" + varint(200_000_000))
    assert read_until_closed(c) == b""
    assert time.monotonic() - start < 1.0
    wait_for_breach(broker, "max_packet_size", f":{port})")


# -- max_keepalive ----------------------------------------------------------------------


def test_keepalive_above_maximum(client, level, bystander, broker):
    c = client(level)
    cid = unique("lim-ka")
    c.send(Connect(cid, level, True, 101))
    if level == 5:
        ack = c.expect(Connack)
        assert ack.reason_code == ReasonCode.SUCCESS
        assert ack.properties.server_keep_alive == 100
    else:
        # Accepted, the maximum being the server's idle limit; the breach is logged with
        # its cause (3.1.1 has no return code for it; Mosquitto says "identifier
        # rejected").
        assert c.expect(Connack).reason_code == ReasonCode.SUCCESS
        wait_for_breach(broker, "max_keepalive", cid)


# -- receive_maximum --------------------------------------------------------------------


def test_receive_maximum(client, level, bystander, broker):
    watcher, _ = connected(client, 4)
    watcher.subscribe("lim/recvmax/#")
    c, cid = connected(client, level)
    topic = f"lim/recvmax/{level}"
    for pid in (1, 2):
        c.publish(topic, b"m", qos=2, packet_id=pid)
        assert c.expect(Pubrec).packet_id == pid
    c.publish(topic, b"beyond", qos=2, packet_id=3)
    assert_closed(c, level, ReasonCode.RECEIVE_MAXIMUM_EXCEEDED)
    assert [watcher.expect(Publish).payload for _ in range(2)] == [b"m", b"m"]
    watcher.expect_nothing(0.2)
    wait_for_breach(broker, "receive_maximum", cid)


# -- max_queued_messages ----------------------------------------------------------------


def test_queued_messages(client, level, bystander, broker):
    cid = unique("lim-queue")
    props = Properties(session_expiry_interval=60) if level == 5 else None
    c = client(level)
    c.connect(cid, clean=False, properties=props)
    c.subscribe(f"lim/queue/{cid}", qos=1)
    c.disconnect()
    publisher, _ = connected(client, 4)
    for i in range(8):
        publisher.publish(f"lim/queue/{cid}", str(i).encode(), qos=1, packet_id=i + 1)
        publisher.expect(Puback)
    c = client(level)
    assert c.connect(cid, clean=False, properties=props).session_present
    got = [c.expect(Publish).payload for _ in range(5)]
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    c.expect_nothing(0.2)
    assert f"session '{cid}': queue full" in broker.log()


# -- max_topic_levels / max_topic_length on PUBLISH ---------------------------------------


@pytest.mark.parametrize("qos", [0, 1])
def test_topic_levels_publish(client, level, bystander, broker, qos):
    c, cid = connected(client, level)
    c.subscribe("lim/#")
    eight = "lim/" + "/".join("l" * 7)
    assert eight.count("/") + 1 == 8
    c.publish(eight, b"ok")
    assert c.expect(Publish).topic == eight
    c.publish(eight + "/x", b"nine levels", qos=qos, packet_id=1 if qos else None)
    # Well-formed but not accepted: Topic Name invalid (5.0), a plain close (3.1.1).
    assert_closed(c, level, ReasonCode.TOPIC_NAME_INVALID)
    line, _ = wait_for_breach(broker, "max_topic_levels", cid)
    assert "9 topic levels" in line


def test_topic_length_publish(client, level, bystander, broker):
    c, cid = connected(client, level)
    c.subscribe("lim/#")
    topic = "lim/" + "x" * 60
    c.publish(topic, b"64 bytes")
    assert c.expect(Publish).topic == topic
    c.publish(topic + "x", b"65 bytes")
    assert_closed(c, level, ReasonCode.TOPIC_NAME_INVALID)
    wait_for_breach(broker, "max_topic_length", cid)


def test_topic_length_counts_utf8_bytes(client, level, bystander, broker):
    c, cid = connected(client, level)
    c.publish("lim/" + "é" * 31, b"66 bytes in 35 characters")
    assert_closed(c, level, ReasonCode.TOPIC_NAME_INVALID)
    line, _ = wait_for_breach(broker, "max_topic_length", cid)
    assert "66 bytes" in line


def test_will_topic_over_limits_refused(client, level, bystander, broker):
    c = client(level)
    cid = unique("lim-will")
    c.send(Connect(cid, level, True, 60, will=Will("lim/" + "/".join("w" * 8), b"x")))
    if level == 5:
        assert c.expect(Connack).reason_code == ReasonCode.TOPIC_NAME_INVALID
        assert c.expect_closed() == []
    else:
        assert read_until_closed(c) == b"\x20\x02\x00\x03"  # server unavailable
    wait_for_breach(broker, "max_topic_levels", cid)


# -- max_topic_levels / max_topic_length on SUBSCRIBE --------------------------------------


def test_topic_filter_limits_refused_in_suback(client, level, bystander, broker):
    c, cid = connected(client, level)
    c.send(Subscribe(3, [
        SubscriptionRequest("lim/+/+/+/+/+/+/#", 1),     # 8 levels
        SubscriptionRequest("lim/+/+/+/+/+/+/+/#", 1),   # 9 levels
        SubscriptionRequest("lim/" + "f" * 60, 1),        # 64 bytes
        SubscriptionRequest("lim/" + "f" * 61, 1),        # 65 bytes
        SubscriptionRequest("$share/g/lim/+/+/+/+/+/+/#", 1),  # the inner filter counts
    ]))
    ack = c.expect(Suback)
    bad = failure(level, ReasonCode.TOPIC_FILTER_INVALID)
    assert ack.reason_codes == [ReasonCode.GRANTED_QOS_1, bad, ReasonCode.GRANTED_QOS_1,
                                bad, ReasonCode.GRANTED_QOS_1]
    # Not a reason to close: the connection and the granted filters work.
    c.publish("lim/a/b/c/d/e/f/g", b"still open", qos=1, packet_id=9)
    # One copy through the plain filter, one through the shared group (MQTT 5 4.8.2).
    got = [c.recv(), c.recv(), c.recv()]
    assert sorted(type(p).__name__ for p in got) == ["Puback", "Publish", "Publish"]
    wait_for_breach(broker, "max_topic_levels", cid)
    wait_for_breach(broker, "max_topic_length", cid)


# -- max_subscriptions --------------------------------------------------------------------


def test_subscription_quota(client, level, bystander, broker):
    c, cid = connected(client, level)
    c.send(Subscribe(1, [SubscriptionRequest(f"lim/q/{i}", 1) for i in range(5)]))
    quota = failure(level, ReasonCode.QUOTA_EXCEEDED)
    assert c.expect(Suback).reason_codes == [ReasonCode.GRANTED_QOS_1] * 4 + [quota]
    # Replacing a subscription the session holds is not a new one.
    assert c.subscribe("lim/q/0", qos=0, packet_id=2).reason_codes == [ReasonCode.SUCCESS]
    assert c.subscribe("lim/q/new", packet_id=3).reason_codes == [quota]
    c.send(Unsubscribe(4, ["lim/q/1"]))
    c.expect(Unsuback)
    assert c.subscribe("lim/q/new", packet_id=5).reason_codes == [ReasonCode.SUCCESS]
    c.publish("lim/q/new", b"delivered", qos=1, packet_id=6)
    got = [c.recv(), c.recv()]
    assert sorted(type(p).__name__ for p in got) == ["Puback", "Publish"]
    wait_for_breach(broker, "max_subscriptions", cid)


def test_breaches_logged_once_per_connection_but_all_counted(client, level, bystander,
                                                             broker):
    c, cid = connected(client, level)
    c.send(Subscribe(1, [SubscriptionRequest(f"lim/once/{i}", 0) for i in range(4)]))
    c.expect(Suback)
    for pid in range(2, 12):
        assert c.subscribe(f"lim/once/x{pid}", packet_id=pid).reason_codes == [
            failure(level, ReasonCode.QUOTA_EXCEEDED)]
    _, first = wait_for_breach(broker, "max_subscriptions", cid)
    assert len([line for line, _ in breaches(broker, "max_subscriptions") if cid in line]) == 1
    other, other_cid = connected(client, level)
    other.send(Subscribe(1, [SubscriptionRequest(f"lim/once2/{i}", 0) for i in range(5)]))
    other.expect(Suback)
    _, later = wait_for_breach(broker, "max_subscriptions", other_cid)
    assert later >= first + 10  # the nine unlogged breaches were counted


# -- max_client_id_length -------------------------------------------------------------------


@pytest.mark.parametrize("level_", [3, 4, 5], ids=["mqtt31", "mqtt311", "mqtt5"])
def test_client_id_length(client, level_, bystander, broker):
    ok = client(level_)
    assert ok.connect("i" * 32).reason_code == ReasonCode.SUCCESS
    # 33 bytes; 34 bytes in 17 characters; far too long.
    for too_long in ("i" * 33, "é" * 17, "L" * 1000):
        c = client(level_)
        c.send(Connect(too_long, level_, True, 60))
        if level_ == 5:
            assert c.expect(Connack).reason_code == ReasonCode.CLIENT_IDENTIFIER_NOT_VALID
            assert c.expect_closed() == []
        else:
            assert read_until_closed(c) == b"\x20\x02\x00\x02"  # identifier rejected
    wait_for_breach(broker, "max_client_id_length", "34 bytes")
    line, _ = wait_for_breach(broker, "max_client_id_length", "1000 bytes")
    assert "L" * 33 not in line  # the log shows a prefix, not the whole id


# -- max_user_properties (5.0 only) -----------------------------------------------------------


def test_user_properties_publish(client, bystander, broker):
    watcher, _ = connected(client, 5)
    watcher.subscribe("lim/props")
    c, cid = connected(client, 5)
    c.publish("lim/props", b"four", properties=user_props(4))
    msg = watcher.expect(Publish)
    assert (msg.payload, len(msg.properties.user_properties)) == (b"four", 4)
    c.publish("lim/props", b"five", properties=user_props(5))
    assert_closed(c, 5, ReasonCode.QUOTA_EXCEEDED)
    watcher.expect_nothing(0.2)  # the refused message went nowhere
    line, _ = wait_for_breach(broker, "max_user_properties", cid)
    assert "5 user properties" in line


def test_user_properties_other_packets(client, bystander, broker):
    c, cid = connected(client, 5)
    c.send(Subscribe(1, [SubscriptionRequest("lim/p", 0)], user_props(5)))
    assert_closed(c, 5, ReasonCode.QUOTA_EXCEEDED)
    wait_for_breach(broker, "max_user_properties", cid)


@pytest.mark.parametrize("where", ["connect", "will"])
def test_user_properties_connect(client, bystander, broker, where):
    c = client(5)
    cid = unique("lim-props")
    if where == "connect":
        c.send(Connect(cid, 5, True, 60, properties=user_props(5)))
    else:
        c.send(Connect(cid, 5, True, 60, will=Will("lim/w", b"x", properties=user_props(5))))
    assert c.expect(Connack).reason_code == ReasonCode.QUOTA_EXCEEDED
    assert c.expect_closed() == []
    wait_for_breach(broker, "max_user_properties", cid)


def test_violation_is_not_a_limit(client, level, bystander, broker):
    """Control: protocol errors are not counted as limit breaches."""
    c, cid = connected(client, level)
    c.send_raw(frame(0x36, b"\x00\x01x\x00\x01" + (b"\x00" if level == 5 else b"")))
    assert_closed(c, level, ReasonCode.MALFORMED_PACKET)
    assert not any(cid in line for line in broker.log().splitlines() if "limit " in line)
    assert not is_closed_now(bystander.c, 0.05)
