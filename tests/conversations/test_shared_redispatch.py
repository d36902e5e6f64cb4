"""Shared-subscription messages that a member's session ends without receiving go to
another member of the group (MQTT 5 4.8.2), over real sockets.

Members join in order and the group gives messages in turn, so the first message of a
fresh group goes to the first member.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from roost.mqtt import Properties, Puback, Publish, ReasonCode
from tests.admin.helpers import scrape
from tests.broker import BrokerProcess, RawClient, online

GRANTED = ReasonCode.GRANTED_QOS_1


def reset(c: RawClient) -> None:
    """Abort the connection with a TCP reset (no DISCONNECT, no FIN)."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def publish_qos1(c: RawClient, topic: str, payload: bytes, packet_id: int = 1) -> None:
    c.publish(topic, payload, qos=1, packet_id=packet_id)
    assert c.expect(Puback).packet_id == packet_id


def receive(c: RawClient, n: int, timeout: float = 5.0) -> list[Publish]:
    """``n`` PUBLISHes, each acknowledged."""
    got = []
    for _ in range(n):
        p = c.expect(Publish, timeout)
        assert isinstance(p, Publish)
        c.send(Puback(p.packet_id))  # type: ignore[arg-type]
        got.append(p)
    return got


def test_member_reset_with_an_unacknowledged_message(client, level):
    t = f"shr{level}/reset"
    a = online(client, level, f"shr-reset-a-{level}")
    b = online(client, level, f"shr-reset-b-{level}")
    for c in (a, b):
        assert c.subscribe(f"$share/grp/{t}", qos=1).reason_codes == [GRANTED]
    pub = online(client, level, f"shr-reset-pub-{level}")
    publish_qos1(pub, t, b"m1")
    assert a.expect(Publish).payload == b"m1"  # never acknowledged
    reset(a)
    [got] = receive(b, 1)
    assert (got.topic, got.payload, got.qos, got.dup) == (t, b"m1", 1, False)
    b.expect_nothing(0.2)


def test_messages_queued_behind_a_full_window(client):
    t = "shr5/window"
    a = online(client, 5, "shr-window-a", properties=Properties(receive_maximum=1))
    b = online(client, 5, "shr-window-b")
    for c in (a, b):
        assert c.subscribe(f"$share/grp/{t}", qos=1).reason_codes == [GRANTED]
    pub = online(client, 5, "shr-window-pub")
    for i in range(1, 6):
        publish_qos1(pub, t, f"m{i}".encode(), packet_id=i)
    # a holds m1 in flight and m3, m5 behind its window of one; b gets m2 and m4.
    assert [p.payload for p in receive(b, 2)] == [b"m2", b"m4"]
    assert a.expect(Publish).payload == b"m1"
    a.expect_nothing(0.1)
    reset(a)
    got = receive(b, 3)
    assert [(p.payload, p.dup) for p in got] == [(b"m1", False), (b"m3", False),
                                                 (b"m5", False)]
    b.expect_nothing(0.2)


def test_offline_member_whose_session_expires(client):
    t = "shr5/expiry"
    a = online(client, 5, "shr-expiry-a", clean=False,
               properties=Properties(session_expiry_interval=1))
    assert a.subscribe(f"$share/grp/{t}", qos=1).reason_codes == [GRANTED]
    a.disconnect()
    pub = online(client, 5, "shr-expiry-pub")
    publish_qos1(pub, t, b"m1")  # a is the only member: queued for its session
    b = online(client, 5, "shr-expiry-b")
    assert b.subscribe(f"$share/grp/{t}", qos=1).reason_codes == [GRANTED]
    b.expect_nothing(0.3)
    [got] = receive(b, 1, timeout=5.0)  # once a's session has expired (1 s)
    assert (got.payload, got.dup) == (b"m1", False)


@pytest.mark.parametrize("takeover", [False, True], ids=["offline", "online"])
def test_member_session_ended_by_clean_start(client, level, takeover):
    t = f"shr{level}/clean{int(takeover)}"
    persistent = Properties(session_expiry_interval=300) if level == 5 else None
    a = online(client, level, f"shr-clean{int(takeover)}-a-{level}", clean=False,
               properties=persistent)
    assert a.subscribe(f"$share/grp/{t}", qos=1).reason_codes == [GRANTED]
    pub = online(client, level, f"shr-clean{int(takeover)}-pub-{level}")
    if takeover:
        b = online(client, level, f"shr-clean{int(takeover)}-b-{level}")
        assert b.subscribe(f"$share/grp/{t}", qos=1).reason_codes == [GRANTED]
        publish_qos1(pub, t, b"m1")
        assert a.expect(Publish).payload == b"m1"  # in flight, never acknowledged
    else:
        a.disconnect()
        publish_qos1(pub, t, b"m1")  # queued for a's session
        b = online(client, level, f"shr-clean{int(takeover)}-b-{level}")
        assert b.subscribe(f"$share/grp/{t}", qos=1).reason_codes == [GRANTED]
    again = online(client, level, f"shr-clean{int(takeover)}-a-{level}", clean=True)
    [got] = receive(b, 1)
    assert (got.payload, got.dup) == (b"m1", False)
    again.expect_nothing(0.2)


def test_hand_back_and_drops_are_counted_in_metrics():
    """/metrics counts a message handed to another member, and one dropped because
    its group had no member left."""
    with BrokerProcess(http_port=0) as broker:
        def connect(cid: str) -> RawClient:
            return online(lambda lv: RawClient(broker.port, lv), 5, cid)

        a, b = connect("shr-m-a"), connect("shr-m-b")
        for c in (a, b):
            c.subscribe("$share/g/shr/m", qos=1)
        pub = connect("shr-m-pub")
        publish_qos1(pub, "shr/m", b"one")
        assert a.expect(Publish).payload == b"one"
        reset(a)
        receive(b, 1)
        publish_qos1(pub, "shr/m", b"two", packet_id=2)
        assert b.expect(Publish).payload == b"two"
        reset(b)  # the last member: nobody to hand it to
        metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for _ in range(50):
            metrics = scrape(broker)
            if metrics.get(("roost_messages_dropped_total",
                            (("reason", "no_share_member"),))) == 1:
                break
            time.sleep(0.05)
        assert metrics[("roost_shared_redispatched_total", ())] == 1
        assert metrics[("roost_messages_dropped_total", (("reason", "no_share_member"),))] == 1


def test_hand_back_survives_a_broker_crash(tmp_path):
    """A shared message queued for an offline member is handed to another member when
    that member's session expires — also when the broker was killed in between: the
    store keeps which group each delivery came through."""
    with BrokerProcess(data_dir=tmp_path) as broker:
        def connect(cid: str, **kw: object) -> RawClient:
            return online(lambda lv: RawClient(broker.port, lv), 5, cid, **kw)

        a = connect("shr-crash-a", clean=False,
                    properties=Properties(session_expiry_interval=3))
        a.subscribe("$share/g/shr/crash", qos=1)
        a.close()  # offline; the only member
        pub = connect("shr-crash-pub")
        publish_qos1(pub, "shr/crash", b"kept")  # queued for a, committed before PUBACK
        broker.restart(graceful=False)
        b = connect("shr-crash-b")
        b.subscribe("$share/g/shr/crash", qos=1)
        [got] = receive(b, 1, timeout=8)  # once a's session expires
        assert (got.topic, got.payload, got.dup) == ("shr/crash", b"kept", False)
