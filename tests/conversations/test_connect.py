"""CONNECT and the life of a connection: CONNACK, sessions, client ids, protocol levels,
takeover, keepalive and the connect timeout (MQTT 3.1.1 section 3.1/3.2, MQTT 5.0
section 3.1/3.2)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from roost.mqtt import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Properties,
    Puback,
    Publish,
    ReasonCode,
    encode,
)
from tests.broker import BrokerProcess, RawClient


def read_until_closed(c: RawClient, timeout: float = 5.0) -> bytes:
    """Every byte the broker sends until it closes the connection."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection still open; received {data!r}")
        c.sock.settimeout(left)
        try:
            chunk = c.sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            continue
        if not chunk:
            return data
        data += chunk


def persistent(level: int) -> dict[str, object]:
    """CONNECT arguments for a session that outlives the connection."""
    if level == 5:
        return {"clean": False, "properties": Properties(session_expiry_interval=300)}
    return {"clean": False}


def assert_roundtrip(c: RawClient, topic: str) -> None:
    """The connection is alive and routing: it receives its own QoS 0 message."""
    assert c.subscribe(topic).reason_codes == [ReasonCode.SUCCESS]
    c.publish(topic, b"ping")
    msg = c.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos) == (topic, b"ping", 0)


# -- CONNACK ----------------------------------------------------------------------------


def test_connack_success_bytes_311(client):
    c = client(4)
    c.send(Connect("conn-bytes-311", 4, True, 60))
    assert c.sock.recv(4) == b"\x20\x02\x00\x00"
    c.expect_nothing(0.1)


def test_connack_success(client, level):
    c = client(level)
    ack = c.connect(f"conn-ok-{level}")
    assert ack.reason_code == ReasonCode.SUCCESS
    assert ack.session_present is False
    if level == 4:
        assert ack.properties == Properties()
    assert_roundtrip(c, f"conn/ok/{level}")


def test_connack_properties_v5(client):
    c = client(5)
    ack = c.connect("conn-props-v5")
    assert ack.reason_code == ReasonCode.SUCCESS
    props = ack.properties
    assert props.maximum_packet_size == 1_048_576
    assert props.topic_alias_maximum == 32
    assert props.receive_maximum == 1024
    # Nothing the client did not ask for or that matches the defaults.
    assert props.assigned_client_identifier is None
    assert props.server_keep_alive is None
    assert props.response_information is None
    assert props.maximum_qos is None
    assert props.retain_available is None


def test_request_response_information_v5(client):
    c = client(5)
    ack = c.connect("conn-respinfo-v5",
                    properties=Properties(request_response_information=1))
    assert ack.reason_code == ReasonCode.SUCCESS
    assert ack.properties.response_information == "roost/response/conn-respinfo-v5"


def test_request_response_information_zero_v5(client):
    c = client(5)
    ack = c.connect("conn-respinfo0-v5",
                    properties=Properties(request_response_information=0))
    assert ack.properties.response_information is None


def test_authentication_method_refused_v5(client):
    c = client(5)
    ack = c.connect("conn-auth-v5", properties=Properties(authentication_method="SCRAM-SHA-1"))
    assert ack.reason_code == ReasonCode.BAD_AUTHENTICATION_METHOD
    assert ack.reason_code == 0x8C
    assert ack.session_present is False
    assert c.expect_closed() == []


# -- Session present ------------------------------------------------------------------


def test_clean_session_never_present(client, level):
    cid = f"conn-clean-{level}"
    c = client(level)
    assert c.connect(cid, clean=True).session_present is False
    c.subscribe(f"conn/clean/{level}", qos=1)
    c.disconnect()
    c = client(level)
    assert c.connect(cid, clean=True).session_present is False
    # The subscription went with the old session.
    c.publish(f"conn/clean/{level}", b"x")
    c.expect_nothing(0.2)


def test_session_present_on_resume(client, level):
    cid = f"conn-resume-{level}"
    topic = f"conn/resume/{level}"
    c = client(level)
    ack = c.connect(cid, clean=True)  # start from nothing
    c.disconnect()
    c = client(level)
    ack = c.connect(cid, **persistent(level))
    assert ack.reason_code == ReasonCode.SUCCESS
    assert ack.session_present is False
    assert c.subscribe(topic, qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    c.disconnect()

    c = client(level)
    ack = c.connect(cid, **persistent(level))
    assert ack.reason_code == ReasonCode.SUCCESS
    assert ack.session_present is True
    # The subscription survived: no SUBSCRIBE needed.
    c.publish(topic, b"still here")
    msg = c.expect(Publish)
    assert (msg.topic, msg.payload) == (topic, b"still here")
    c.disconnect()

    # Clean session / clean start 1 discards it.
    c = client(level)
    assert c.connect(cid, clean=True).session_present is False
    c.publish(topic, b"gone")
    c.expect_nothing(0.2)


def test_session_present_bytes_311(client):
    cid = "conn-present-bytes-311"
    c = client(4)
    c.send(Connect(cid, 4, False, 60))
    assert c.sock.recv(4) == b"\x20\x02\x00\x00"
    c.disconnect()
    c = client(4)
    c.send(Connect(cid, 4, False, 60))
    assert c.sock.recv(4) == b"\x20\x02\x01\x00"
    c.disconnect()
    c = client(4)
    c.send(Connect(cid, 4, True, 60))
    assert c.sock.recv(4) == b"\x20\x02\x00\x00"


def test_clean_start_0_without_expiry_is_not_kept_v5(client):
    """5.0: clean start 0 with session expiry 0 (absent) ends the session at close."""
    cid = "conn-noexpiry-v5"
    c = client(5)
    assert c.connect(cid, clean=False).session_present is False
    c.subscribe("conn/noexpiry", qos=1)
    c.disconnect()
    c = client(5)
    assert c.connect(cid, clean=False).session_present is False


# -- Client identifiers -----------------------------------------------------------------


def test_empty_client_id_clean_accepted_311(client):
    c = client(4)
    c.send(Connect("", 4, True, 60))
    assert c.sock.recv(4) == b"\x20\x02\x00\x00"
    assert_roundtrip(c, "conn/emptyid/311")


def test_empty_client_id_persistent_refused_311(client):
    c = client(4)
    c.send(Connect("", 4, False, 60))
    # Return code 0x02 Identifier rejected, then close (MQTT-3.1.3-8).
    assert read_until_closed(c) == b"\x20\x02\x00\x02"


def test_empty_client_id_refused_31(client):
    c = client(3)
    c.send(Connect("", 3, True, 60))
    assert read_until_closed(c) == b"\x20\x02\x00\x02"


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "persistent"])
def test_empty_client_id_assigned_v5(client, clean):
    c = client(5)
    props = Properties(session_expiry_interval=60) if not clean else None
    ack = c.connect("", clean=clean, properties=props)
    assert ack.reason_code == ReasonCode.SUCCESS
    assert ack.session_present is False
    assigned = ack.properties.assigned_client_identifier
    assert isinstance(assigned, str) and assigned
    other = client(5)
    assert other.connect("").properties.assigned_client_identifier not in (None, assigned)
    assert_roundtrip(c, f"conn/assigned/{clean}")


def test_client_id_not_assigned_when_given_v5(client):
    ack = client(5).connect("conn-given-v5")
    assert ack.properties.assigned_client_identifier is None


# -- Protocol levels ------------------------------------------------------------------


def test_mqtt31_connect(client):
    c = client(3)
    c.send(Connect("conn-mqtt31", 3, True, 60))
    assert c.sock.recv(4) == b"\x20\x02\x00\x00"
    assert_roundtrip(c, "conn/mqtt31")


def test_mqtt31_and_311_and_5_interoperate(client):
    sub = client(3)
    sub.connect("conn-mix-31")
    sub.subscribe("conn/mix", qos=1)
    for level in (4, 5):
        pub = client(level)
        pub.connect(f"conn-mix-pub-{level}")
        pub.publish("conn/mix", f"from {level}".encode(), qos=1, packet_id=3)
        msg = sub.expect(Publish)
        assert (msg.topic, msg.payload, msg.qos) == ("conn/mix", f"from {level}".encode(), 1)
        sub.send(Puback(msg.packet_id))


@pytest.mark.parametrize("proto", [6, 2, 0, 255])
def test_unsupported_protocol_level(client, proto):
    c = client(4)
    # CONNECT "MQTT" with an unknown level: CONNACK 0x01 in the 3.1.1 format, then close.
    body = b"\x00\x04MQTT" + bytes((proto, 0x02)) + b"\x00\x3c" + b"\x00\x03abc"
    c.send_raw(b"\x10" + bytes((len(body),)) + body)
    assert read_until_closed(c) == b"\x20\x02\x00\x01"


def test_unsupported_level_for_mqisdp(client):
    c = client(4)
    body = b"\x00\x06MQIsdp\x04\x02\x00\x3c\x00\x03abc"
    c.send_raw(b"\x10" + bytes((len(body),)) + body)
    assert read_until_closed(c) == b"\x20\x02\x00\x01"


def test_unknown_protocol_name_closed(client):
    c = client(4)
    body = b"\x00\x04MQTX\x04\x02\x00\x3c\x00\x03abc"
    c.send_raw(b"\x10" + bytes((len(body),)) + body)
    assert read_until_closed(c) == b""


# -- Packet order -------------------------------------------------------------------------


def test_second_connect_closes(client, level):
    c = client(level)
    c.connect(f"conn-second-{level}")
    c.send(Connect(f"conn-second-{level}", level, True, 60))
    got = c.expect_closed()
    if level == 5:
        assert got == [Disconnect(ReasonCode.PROTOCOL_ERROR)]
    else:
        assert got == []


def test_first_packet_not_connect(client, level):
    c = client(level)
    c.send(Pingreq())
    assert c.expect_closed() == []


def test_first_packet_publish_closes(client, level):
    c = client(level)
    c.publish("conn/first", b"x")
    assert c.expect_closed() == []


# -- Takeover -----------------------------------------------------------------------------


def test_client_id_takeover(client, level):
    cid = f"conn-takeover-{level}"
    old = client(level)
    assert old.connect(cid).reason_code == ReasonCode.SUCCESS
    new = client(level)
    ack = new.connect(cid)
    assert ack.reason_code == ReasonCode.SUCCESS
    assert ack.session_present is False
    got = old.expect_closed()
    if level == 5:
        assert got == [Disconnect(ReasonCode.SESSION_TAKEN_OVER)]
        assert got[0].reason_code == 0x8E
    else:
        assert got == []
    assert_roundtrip(new, f"conn/takeover/{level}")


def test_takeover_keeps_persistent_session(client, level):
    cid = f"conn-takeover-p-{level}"
    topic = f"conn/takeover-p/{level}"
    old = client(level)
    old.connect(cid, clean=True)
    old.disconnect()
    old = client(level)
    assert old.connect(cid, **persistent(level)).session_present is False
    old.subscribe(topic, qos=1)
    new = client(level)
    ack = new.connect(cid, **persistent(level))
    assert ack.session_present is True
    old.expect_closed()
    pub = client(level)
    pub.connect(f"conn-takeover-pub-{level}")
    pub.publish(topic, b"to the new one")
    msg = new.expect(Publish)
    assert (msg.topic, msg.payload) == (topic, b"to the new one")


# -- Keepalive -----------------------------------------------------------------------------


def test_keepalive_enforced(client, level):
    c = client(level)
    c.connect(f"conn-keepalive-{level}", keepalive=1)
    start = time.monotonic()
    got = c.expect_closed(timeout=4)
    elapsed = time.monotonic() - start
    # One and a half times the keepalive (MQTT-3.1.2-24), not sooner than the keepalive.
    assert 1.2 <= elapsed <= 2.5, elapsed
    if level == 5:
        assert got == [Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)]
    else:
        assert got == []


def test_pingreq_keeps_connection_alive(client, level):
    c = client(level)
    c.connect(f"conn-ping-{level}", keepalive=1)
    for _ in range(4):
        time.sleep(0.5)
        c.send(Pingreq())
        c.expect(Pingresp)
    # 2 s passed, beyond 1.5 x keepalive: still connected.
    assert_roundtrip(c, f"conn/ping/{level}")


def test_keepalive_zero_never_times_out(client, level):
    c = client(level)
    c.connect(f"conn-ka0-{level}", keepalive=0)
    c.expect_nothing(0.3)
    c.send(Pingreq())
    c.expect(Pingresp)


# -- Brokers with non-default limits ----------------------------------------------------------


@pytest.fixture(scope="module")
def timeout_broker() -> Iterator[BrokerProcess]:
    with BrokerProcess("[mqtt]\nconnect_timeout = 1\n") as proc:
        yield proc


@pytest.fixture(scope="module")
def keepalive_broker() -> Iterator[BrokerProcess]:
    with BrokerProcess("[mqtt]\nmax_keepalive = 10\n") as proc:
        yield proc


def test_connect_timeout(timeout_broker):
    idle = RawClient(timeout_broker.port)
    active = RawClient(timeout_broker.port, 5)
    try:
        start = time.monotonic()
        active.connect("conn-timeout-active")
        assert idle.expect_closed(timeout=4) == []
        elapsed = time.monotonic() - start
        assert 0.7 <= elapsed <= 3.0, elapsed
        # A client that sent CONNECT in time is not affected.
        active.send(Pingreq())
        active.expect(Pingresp)
    finally:
        idle.close()
        active.close()


def test_connect_timeout_partial_connect(timeout_broker):
    """Half a CONNECT does not stop the timer."""
    c = RawClient(timeout_broker.port)
    try:
        c.send_raw(encode(Connect("conn-timeout-half", 4), 4)[:5])
        assert c.expect_closed(timeout=4) == []
    finally:
        c.close()


def test_server_keep_alive_v5(keepalive_broker):
    c = RawClient(keepalive_broker.port, 5)
    try:
        ack = c.connect("conn-ska-v5", keepalive=100)
        assert ack.reason_code == ReasonCode.SUCCESS
        assert ack.properties.server_keep_alive == 10
    finally:
        c.close()


def test_server_keep_alive_for_zero_v5(keepalive_broker):
    c = RawClient(keepalive_broker.port, 5)
    try:
        ack = c.connect("conn-ska0-v5", keepalive=0)
        assert ack.reason_code == ReasonCode.SUCCESS
        assert ack.properties.server_keep_alive == 10
    finally:
        c.close()


def test_keepalive_within_limit_v5(keepalive_broker):
    c = RawClient(keepalive_broker.port, 5)
    try:
        ack = c.connect("conn-ska5-v5", keepalive=5)
        assert ack.reason_code == ReasonCode.SUCCESS
        assert ack.properties.server_keep_alive is None
    finally:
        c.close()


def test_keepalive_above_limit_accepted_311(keepalive_broker):
    c = RawClient(keepalive_broker.port, 4)
    try:
        c.send(Connect("conn-ska-311", 4, True, 100))
        # Accepted (3.1.1 has no return code naming the cause); the maximum becomes the
        # server's idle limit, and the log says so.
        assert c.recv_exact(4) == b"\x20\x02\x00\x00"
        keepalive_broker.wait_log("keepalive 100 s above max_keepalive 10 s: closed "
                                  "after 15 s without a packet")
    finally:
        c.close()


def test_keepalive_zero_accepted_311(keepalive_broker):
    c = RawClient(keepalive_broker.port, 4)
    try:
        c.send(Connect("conn-ka0-max-311", 4, True, 0))
        assert c.recv_exact(4) == b"\x20\x02\x00\x00"
        keepalive_broker.wait_log("keepalive 0 s (none) max_keepalive 10 s")
    finally:
        c.close()


@pytest.fixture(scope="module")
def idle_limit_broker() -> Iterator[BrokerProcess]:
    with BrokerProcess("[mqtt]\nmax_keepalive = 1\n") as proc:
        yield proc


@pytest.mark.parametrize("keepalive", [0, 100], ids=["none", "above-max"])
def test_max_keepalive_is_the_idle_limit_311(idle_limit_broker, keepalive):
    """Keepalive 0 (or above the maximum) cannot hold an idle connection forever (the
    concern of CVE-2020-13849): it is closed after 1.5 x max_keepalive without a packet,
    and kept while it sends packets."""
    idle = RawClient(idle_limit_broker.port, 4)
    busy = RawClient(idle_limit_broker.port, 4)
    try:
        start = time.monotonic()
        assert idle.connect(f"conn-idle-{keepalive}", keepalive=keepalive).reason_code == 0
        assert busy.connect(f"conn-busy-{keepalive}", keepalive=keepalive).reason_code == 0
        for _ in range(4):
            time.sleep(0.5)
            busy.send(Pingreq())
            busy.expect(Pingresp)
        assert idle.expect_closed(timeout=3) == []
        assert 1.4 <= time.monotonic() - start <= 3.5
        busy.send(Pingreq())
        busy.expect(Pingresp)
    finally:
        idle.close()
        busy.close()


def test_keepalive_within_limit_311(keepalive_broker):
    c = RawClient(keepalive_broker.port, 4)
    try:
        ack = c.connect("conn-ka10-311", keepalive=10)
        assert isinstance(ack, Connack) and ack.reason_code == ReasonCode.SUCCESS
    finally:
        c.close()



# -- Malformed CONNECT ----------------------------------------------------------------------


def _connect_body(level: int, flags: int, client_id: bytes = b"\x00\x03abc",
                  tail: bytes = b"") -> bytes:
    props = b"\x00" if level == 5 else b""
    body = b"\x00\x04MQTT" + bytes((level, flags)) + b"\x00\x3c" + props + client_id + tail
    return b"\x10" + bytes((len(body),)) + body


@pytest.mark.parametrize("case", ["reserved-flag", "will-qos3", "will-retain-without-will",
                                  "invalid-utf8-id", "null-in-id", "trailing-bytes",
                                  "truncated"])
def test_malformed_connect_closed_without_connack(client, level, case):
    c = client(level)
    data = {
        "reserved-flag": _connect_body(level, 0x03),
        "will-qos3": _connect_body(level, 0x1E),
        "will-retain-without-will": _connect_body(level, 0x22),
        "invalid-utf8-id": _connect_body(level, 0x02, b"\x00\x02\xc3\x28"),
        "null-in-id": _connect_body(level, 0x02, b"\x00\x03a\x00b"),
        "trailing-bytes": _connect_body(level, 0x02, tail=b"\x00"),
        "truncated": _connect_body(level, 0x02, b"\x00\x09abc"),
    }[case]
    c.send_raw(data)
    assert read_until_closed(c) == b""


def test_password_without_user_name_311(client):
    c = client(4)
    c.send_raw(_connect_body(4, 0x42, tail=b"\x00\x02pw"))
    assert read_until_closed(c) == b""


def test_user_name_and_password_accepted(client, level):
    c = client(level)
    ack = c.connect(f"conn-userpw-{level}", username="alice", password=b"secret")
    assert ack.reason_code == ReasonCode.SUCCESS
