"""PUBLISH at QoS 0, 1 and 2 in both directions, packet identifiers, the inflight window,
redelivery with DUP, exactly-once, offline queues and ordering (MQTT 3.1.1 section 4.3,
4.4, 4.6; MQTT 5.0 section 4.3, 4.4, 4.6, 4.9)."""

from __future__ import annotations

from collections.abc import Callable

from roost.mqtt import (
    Disconnect,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    ReasonCode,
)
from tests.broker import RawClient

Factory = Callable[..., RawClient]


def persistent(level: int) -> dict[str, object]:
    """CONNECT arguments for a session that outlives the connection."""
    if level == 5:
        return {"clean": False, "properties": Properties(session_expiry_interval=300)}
    return {"clean": False}


def fresh(client: Factory, level: int, cid: str, **kw: object) -> RawClient:
    """A connected client whose session starts empty (any earlier one discarded)."""
    c = client(level)
    if kw.get("clean") is False:
        c.connect(cid, clean=True)
        c.disconnect()
        c = client(level)
    ack = c.connect(cid, **kw)
    assert ack.reason_code == ReasonCode.SUCCESS
    assert ack.session_present is False
    return c


def subscriber(client: Factory, level: int, cid: str, topic: str, qos: int,
               **kw: object) -> RawClient:
    c = fresh(client, level, cid, **kw)
    assert c.subscribe(topic, qos).reason_codes == [ReasonCode(qos)]
    return c


def publisher(client: Factory, level: int, cid: str) -> RawClient:
    return fresh(client, level, cid)


def go_offline(c: RawClient) -> None:
    """DISCONNECT and wait for the broker to close: it has then let go of the session,
    so what is published next is queued, not sent to this connection."""
    c.send(Disconnect())
    assert c.expect_closed() == []
    c.close()


# -- Client to broker -------------------------------------------------------------------


def test_qos0_publish_gets_no_ack(client, level):
    sub = subscriber(client, level, f"q0-sub-{level}", f"qos/zero/{level}", 0)
    pub = publisher(client, level, f"q0-pub-{level}")
    pub.publish(f"qos/zero/{level}", b"fire and forget")
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos, msg.packet_id, msg.dup) == (
        f"qos/zero/{level}", b"fire and forget", 0, None, False)
    pub.expect_nothing(0.2)


def test_qos1_publish_acked(client, level):
    topic = f"qos/one/{level}"
    subscriber(client, level, f"q1-sub-{level}", topic, 0)
    pub = publisher(client, level, f"q1-pub-{level}")
    pub.publish(topic, b"m", qos=1, packet_id=4242)
    ack = pub.expect(Puback)
    assert ack.packet_id == 4242
    assert ack.reason_code == ReasonCode.SUCCESS
    pub.expect_nothing(0.1)


def test_qos2_publish_handshake(client, level):
    topic = f"qos/two/{level}"
    sub = subscriber(client, level, f"q2-sub-{level}", topic, 0)
    pub = publisher(client, level, f"q2-pub-{level}")
    pub.publish(topic, b"m", qos=2, packet_id=513)
    rec = pub.expect(Pubrec)
    assert (rec.packet_id, rec.reason_code) == (513, ReasonCode.SUCCESS)
    # Delivered on PUBREC already (method A of 4.3.3 leaves that to the receiver).
    assert sub.expect(Publish).payload == b"m"
    pub.send(Pubrel(513))
    comp = pub.expect(Pubcomp)
    assert (comp.packet_id, comp.reason_code) == (513, ReasonCode.SUCCESS)
    pub.expect_nothing(0.1)
    sub.expect_nothing(0.1)


# -- Broker to client ----------------------------------------------------------------------


def test_qos1_delivery_and_ack(client, level):
    topic = f"qos/deliver1/{level}"
    sub = subscriber(client, level, f"d1-sub-{level}", topic, 1)
    pub = publisher(client, level, f"d1-pub-{level}")
    pub.publish(topic, b"one", qos=1, packet_id=9)
    assert pub.expect(Puback).packet_id == 9
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos, msg.dup, msg.retain) == (
        topic, b"one", 1, False, False)
    assert msg.packet_id == 1  # the subscriber's own identifiers, not the publisher's
    sub.send(Puback(msg.packet_id))
    sub.expect_nothing(0.2)


def test_qos2_delivery_handshake(client, level):
    topic = f"qos/deliver2/{level}"
    sub = subscriber(client, level, f"d2-sub-{level}", topic, 2)
    pub = publisher(client, level, f"d2-pub-{level}")
    pub.publish(topic, b"two", qos=2, packet_id=77)
    assert pub.expect(Pubrec).packet_id == 77
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos, msg.dup, msg.packet_id) == (
        topic, b"two", 2, False, 1)
    sub.send(Pubrec(msg.packet_id))
    rel = sub.expect(Pubrel)
    assert (rel.packet_id, rel.reason_code) == (msg.packet_id, ReasonCode.SUCCESS)
    sub.send(Pubcomp(msg.packet_id))
    sub.expect_nothing(0.2)
    pub.send(Pubrel(77))
    assert pub.expect(Pubcomp).packet_id == 77


def test_granted_qos_is_minimum(client, level):
    pub = publisher(client, level, f"min-pub-{level}")
    pid = 1
    for sub_qos in (0, 1, 2):
        topic = f"qos/min/{level}/{sub_qos}"
        sub = subscriber(client, level, f"min-sub-{level}-{sub_qos}", topic, sub_qos)
        for pub_qos in (0, 1, 2):
            pub.publish(topic, f"{pub_qos}".encode(), qos=pub_qos, packet_id=pid)
            if pub_qos == 1:
                assert pub.expect(Puback).packet_id == pid
            elif pub_qos == 2:
                assert pub.expect(Pubrec).packet_id == pid
                pub.send(Pubrel(pid))
                assert pub.expect(Pubcomp).packet_id == pid
            pid += 1
            msg = sub.expect(Publish)
            assert msg.payload == f"{pub_qos}".encode()
            assert msg.qos == min(pub_qos, sub_qos), (pub_qos, sub_qos)
            if msg.qos == 0:
                assert msg.packet_id is None
            elif msg.qos == 1:
                sub.send(Puback(msg.packet_id))
            else:
                sub.send(Pubrec(msg.packet_id))
                assert sub.expect(Pubrel).packet_id == msg.packet_id
                sub.send(Pubcomp(msg.packet_id))
        sub.expect_nothing(0.1)


def test_packet_ids_are_per_session(client, level):
    topic = f"qos/ids/{level}"
    a = subscriber(client, level, f"ids-a-{level}", topic, 1)
    pub = publisher(client, level, f"ids-pub-{level}")
    for i in (1, 2):
        pub.publish(topic, f"m{i}".encode(), qos=1, packet_id=100 + i)
        assert pub.expect(Puback).packet_id == 100 + i
        msg = a.expect(Publish)
        assert (msg.payload, msg.packet_id) == (f"m{i}".encode(), i)
        a.send(Puback(msg.packet_id))
    b = subscriber(client, level, f"ids-b-{level}", topic, 1)
    pub.publish(topic, b"m3", qos=1, packet_id=103)
    assert pub.expect(Puback).packet_id == 103
    got_a, got_b = a.expect(Publish), b.expect(Publish)
    assert (got_a.payload, got_a.packet_id) == (b"m3", 3)
    assert (got_b.payload, got_b.packet_id) == (b"m3", 1)


def test_inflight_window_receive_maximum_v5(client):
    topic = "qos/window/v5"
    sub = subscriber(client, 5, "window-sub-v5", topic, 1,
                     properties=Properties(receive_maximum=2))
    pub = publisher(client, 5, "window-pub-v5")
    for i in range(1, 6):
        pub.publish(topic, f"m{i}".encode(), qos=1, packet_id=i)
        assert pub.expect(Puback).packet_id == i
    first = [sub.expect(Publish) for _ in range(2)]
    assert [(m.payload, m.packet_id) for m in first] == [(b"m1", 1), (b"m2", 2)]
    sub.expect_nothing(0.3)  # two unacknowledged: the window is full
    sub.send(Puback(2))  # acknowledge out of order
    msg = sub.expect(Publish)
    assert (msg.payload, msg.packet_id) == (b"m3", 3)
    sub.expect_nothing(0.2)
    sub.send(Puback(1))
    m4 = sub.expect(Publish)
    # Any identifier not still in flight (3 is) will do.
    assert m4.payload == b"m4" and m4.packet_id != 3
    sub.expect_nothing(0.2)
    sub.send(Puback(3))
    sub.send(Puback(m4.packet_id))
    msg = sub.expect(Publish)
    assert msg.payload == b"m5"
    sub.send(Puback(msg.packet_id))
    sub.expect_nothing(0.2)


def test_inflight_window_counts_qos2_until_pubcomp_v5(client):
    topic = "qos/window2/v5"
    sub = subscriber(client, 5, "window2-sub-v5", topic, 2,
                     properties=Properties(receive_maximum=1))
    pub = publisher(client, 5, "window2-pub-v5")
    for i in (1, 2):
        pub.publish(topic, f"m{i}".encode(), qos=2, packet_id=i)
        assert pub.expect(Pubrec).packet_id == i
        pub.send(Pubrel(i))
        assert pub.expect(Pubcomp).packet_id == i
    msg = sub.expect(Publish)
    assert (msg.payload, msg.packet_id) == (b"m1", 1)
    sub.send(Pubrec(1))
    assert sub.expect(Pubrel).packet_id == 1
    sub.expect_nothing(0.2)  # still in flight until PUBCOMP
    sub.send(Pubcomp(1))
    msg = sub.expect(Publish)
    assert (msg.payload, msg.packet_id) == (b"m2", 2)


# -- Redelivery on reconnect ----------------------------------------------------------


def test_qos1_redelivered_with_dup(client, level):
    cid = f"dup-sub-{level}"
    topic = f"qos/dup/{level}"
    sub = subscriber(client, level, cid, topic, 1, **persistent(level))
    pub = publisher(client, level, f"dup-pub-{level}")
    pub.publish(topic, b"again", qos=1, packet_id=5)
    assert pub.expect(Puback).packet_id == 5
    first = sub.expect(Publish)
    assert (first.payload, first.qos, first.dup) == (b"again", 1, False)
    sub.close()  # no PUBACK, no DISCONNECT

    sub = client(level)
    assert sub.connect(cid, **persistent(level)).session_present is True
    again = sub.expect(Publish)
    assert (again.topic, again.payload, again.qos, again.dup, again.packet_id) == (
        topic, b"again", 1, True, first.packet_id)
    sub.send(Puback(again.packet_id))
    sub.expect_nothing(0.2)
    sub.disconnect()

    # Acknowledged now: not sent a third time.
    sub = client(level)
    assert sub.connect(cid, **persistent(level)).session_present is True
    sub.expect_nothing(0.3)


def test_qos2_redelivered_with_dup_before_pubrec(client, level):
    cid = f"dup2-sub-{level}"
    topic = f"qos/dup2/{level}"
    sub = subscriber(client, level, cid, topic, 2, **persistent(level))
    pub = publisher(client, level, f"dup2-pub-{level}")
    pub.publish(topic, b"q2", qos=2, packet_id=5)
    assert pub.expect(Pubrec).packet_id == 5
    first = sub.expect(Publish)
    sub.close()

    sub = client(level)
    assert sub.connect(cid, **persistent(level)).session_present is True
    again = sub.expect(Publish)
    assert (again.payload, again.qos, again.dup, again.packet_id) == (
        b"q2", 2, True, first.packet_id)
    sub.send(Pubrec(again.packet_id))
    assert sub.expect(Pubrel).packet_id == again.packet_id
    sub.send(Pubcomp(again.packet_id))
    sub.expect_nothing(0.2)


def test_qos2_pubrel_resent_after_reconnect(client, level):
    cid = f"rel-sub-{level}"
    topic = f"qos/pubrel/{level}"
    sub = subscriber(client, level, cid, topic, 2, **persistent(level))
    pub = publisher(client, level, f"rel-pub-{level}")
    pub.publish(topic, b"q2", qos=2, packet_id=8)
    assert pub.expect(Pubrec).packet_id == 8
    msg = sub.expect(Publish)
    sub.send(Pubrec(msg.packet_id))
    assert sub.expect(Pubrel).packet_id == msg.packet_id
    sub.close()  # no PUBCOMP

    sub = client(level)
    assert sub.connect(cid, **persistent(level)).session_present is True
    # The PUBREL is resent, never the PUBLISH (MQTT-4.4.0-1).
    rel = sub.expect(Pubrel)
    assert rel.packet_id == msg.packet_id
    sub.expect_nothing(0.2)
    sub.send(Pubcomp(rel.packet_id))
    sub.expect_nothing(0.2)
    sub.disconnect()

    sub = client(level)
    assert sub.connect(cid, **persistent(level)).session_present is True
    sub.expect_nothing(0.3)


# -- Exactly once towards the broker --------------------------------------------------


def test_qos2_incoming_resend_delivered_once(client, level):
    topic = f"qos/once/{level}"
    sub = subscriber(client, level, f"once-sub-{level}", topic, 2)
    pub = publisher(client, level, f"once-pub-{level}")
    pub.publish(topic, b"exactly once", qos=2, packet_id=7)
    assert pub.expect(Pubrec).packet_id == 7
    # The sender did not see the PUBREC and resends with DUP.
    pub.send(Publish(topic, b"exactly once", 2, False, True, 7))
    rec = pub.expect(Pubrec)
    assert (rec.packet_id, rec.reason_code) == (7, ReasonCode.SUCCESS)
    msg = sub.expect(Publish)
    assert (msg.payload, msg.qos) == (b"exactly once", 2)
    sub.send(Pubrec(msg.packet_id))
    assert sub.expect(Pubrel).packet_id == msg.packet_id
    sub.send(Pubcomp(msg.packet_id))
    sub.expect_nothing(0.3)

    pub.send(Pubrel(7))
    assert pub.expect(Pubcomp).packet_id == 7
    # The identifier is free again: the same id now carries a new message.
    pub.publish(topic, b"second", qos=2, packet_id=7)
    assert pub.expect(Pubrec).packet_id == 7
    msg = sub.expect(Publish)
    assert msg.payload == b"second"


def test_pubrel_for_unknown_id(client, level):
    c = fresh(client, level, f"unknown-rel-{level}")
    c.send(Pubrel(4321))
    comp = c.expect(Pubcomp)
    assert comp.packet_id == 4321
    expected = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND if level == 5 else ReasonCode.SUCCESS
    assert comp.reason_code == expected
    # The connection stays usable.
    c.publish(f"qos/unknown-rel/{level}", b"x", qos=1, packet_id=1)
    assert c.expect(Puback).packet_id == 1


def test_pubrel_twice(client, level):
    """A PUBREL resent after the PUBCOMP was lost gets a PUBCOMP again."""
    topic = f"qos/rel-twice/{level}"
    subscriber(client, level, f"rel-twice-sub-{level}", topic, 0)
    pub = publisher(client, level, f"rel-twice-pub-{level}")
    pub.publish(topic, b"m", qos=2, packet_id=3)
    pub.expect(Pubrec)
    pub.send(Pubrel(3))
    assert pub.expect(Pubcomp).reason_code == ReasonCode.SUCCESS
    pub.send(Pubrel(3))
    comp = pub.expect(Pubcomp)
    assert comp.packet_id == 3
    if level == 5:
        assert comp.reason_code == ReasonCode.PACKET_IDENTIFIER_NOT_FOUND


# -- Offline sessions and ordering ----------------------------------------------------------


def test_offline_queue_delivered_in_order(client, level):
    cid = f"queue-sub-{level}"
    topic = f"qos/queue/{level}"
    sub = subscriber(client, level, cid, topic, 1, **persistent(level))
    go_offline(sub)
    pub = publisher(client, level, f"queue-pub-{level}")
    for i in range(1, 11):
        pub.publish(topic, f"m{i}".encode(), qos=1, packet_id=i)
        assert pub.expect(Puback).packet_id == i

    sub = client(level)
    assert sub.connect(cid, **persistent(level)).session_present is True
    got = []
    for _ in range(10):
        msg = sub.expect(Publish)
        assert (msg.topic, msg.qos, msg.dup) == (topic, 1, False)
        got.append(msg.payload)
        sub.send(Puback(msg.packet_id))
    assert got == [f"m{i}".encode() for i in range(1, 11)]
    sub.expect_nothing(0.2)


def test_qos0_not_queued_offline(client, level):
    cid = f"q0-offline-{level}"
    topic = f"qos/q0-offline/{level}"
    sub = fresh(client, level, cid, **persistent(level))
    assert sub.subscribe(topic, 1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    assert sub.subscribe(topic + "/low", 0).reason_codes == [ReasonCode.SUCCESS]
    go_offline(sub)
    pub = publisher(client, level, f"q0-offline-pub-{level}")
    pub.publish(topic, b"qos0 dropped")
    pub.publish(topic + "/low", b"downgraded to 0, dropped", qos=1, packet_id=1)
    assert pub.expect(Puback).packet_id == 1
    pub.publish(topic, b"qos1 kept", qos=1, packet_id=2)
    assert pub.expect(Puback).packet_id == 2

    sub = client(level)
    assert sub.connect(cid, **persistent(level)).session_present is True
    msg = sub.expect(Publish)
    assert (msg.payload, msg.qos) == (b"qos1 kept", 1)
    sub.send(Puback(msg.packet_id))
    sub.expect_nothing(0.3)


def test_order_of_200_qos1_messages(client, level):
    topic = f"qos/order/{level}"
    sub = subscriber(client, level, f"order-sub-{level}", topic, 1)
    pub = publisher(client, level, f"order-pub-{level}")
    n = 200
    for i in range(1, n + 1):
        pub.publish(topic, str(i).encode(), qos=1, packet_id=i)
    got = []
    while len(got) < n:
        msg = sub.expect(Publish)
        assert msg.qos == 1
        got.append(int(msg.payload))
        sub.send(Puback(msg.packet_id))
    assert got == list(range(1, n + 1))
    acks = [pub.expect(Puback).packet_id for _ in range(n)]
    assert acks == list(range(1, n + 1))
    sub.expect_nothing(0.1)


# -- 5.0 reason codes on PUBACK / PUBREC ------------------------------------------------


def test_no_matching_subscribers(client, level):
    pub = publisher(client, level, f"nomatch-pub-{level}")
    pub.publish(f"qos/nobody/{level}", b"x", qos=1, packet_id=11)
    ack = pub.expect(Puback)
    assert ack.packet_id == 11
    expected = ReasonCode.NO_MATCHING_SUBSCRIBERS if level == 5 else ReasonCode.SUCCESS
    assert ack.reason_code == expected
    pub.publish(f"qos/nobody/{level}", b"x", qos=2, packet_id=12)
    rec = pub.expect(Pubrec)
    assert (rec.packet_id, rec.reason_code) == (12, expected)
    # 0x10 is not an error: the QoS 2 flow continues.
    pub.send(Pubrel(12))
    comp = pub.expect(Pubcomp)
    assert (comp.packet_id, comp.reason_code) == (12, ReasonCode.SUCCESS)


def test_payload_format_invalid_v5(client):
    topic = "qos/pfi/v5"
    sub = subscriber(client, 5, "pfi-sub-v5", topic, 1)
    pub = publisher(client, 5, "pfi-pub-v5")
    pub.publish(topic, b"\xff\xfe not utf-8", qos=1, packet_id=21,
                properties=Properties(payload_format_indicator=1))
    ack = pub.expect(Puback)
    assert (ack.packet_id, ack.reason_code) == (21, ReasonCode.PAYLOAD_FORMAT_INVALID)
    assert ack.reason_code == 0x99
    sub.expect_nothing(0.2)
    # Valid UTF-8 with the same indicator goes through, indicator forwarded.
    pub.publish(topic, "h\u00e9llo".encode(), qos=1, packet_id=22,
                properties=Properties(payload_format_indicator=1))
    ack = pub.expect(Puback)
    assert (ack.packet_id, ack.reason_code) == (22, ReasonCode.SUCCESS)
    msg = sub.expect(Publish)
    assert msg.payload == "h\u00e9llo".encode()
    assert msg.properties.payload_format_indicator == 1
    # At QoS 2 the refusal comes in the PUBREC, which ends the exchange.
    pub.publish(topic, b"\xc3", qos=2, packet_id=24,
                properties=Properties(payload_format_indicator=1))
    rec = pub.expect(Pubrec)
    assert (rec.packet_id, rec.reason_code) == (24, ReasonCode.PAYLOAD_FORMAT_INVALID)
    sub.expect_nothing(0.2)
    # Binary payload without the indicator is fine.
    pub.publish(topic, b"\xff\xfe", qos=1, packet_id=23)
    assert pub.expect(Puback).reason_code == ReasonCode.SUCCESS
    assert sub.expect(Publish).payload == b"\xff\xfe"


def test_resume_sends_inflight_then_queue_in_order(client, level):
    cid = f"resume-order-{level}"
    topic = f"qos/resume-order/{level}"
    sub = subscriber(client, level, cid, topic, 1, **persistent(level))
    pub = publisher(client, level, f"resume-order-pub-{level}")
    pub.publish(topic, b"m1", qos=1, packet_id=1)
    pub.expect(Puback)
    first = sub.expect(Publish)
    assert first.payload == b"m1"
    go_offline(sub)  # m1 unacknowledged
    for i in (2, 3):
        pub.publish(topic, f"m{i}".encode(), qos=1, packet_id=i)
        assert pub.expect(Puback).packet_id == i

    sub = client(level)
    assert sub.connect(cid, **persistent(level)).session_present is True
    got = [sub.expect(Publish) for _ in range(3)]
    assert [(m.payload, m.dup) for m in got] == [(b"m1", True), (b"m2", False), (b"m3", False)]
    assert got[0].packet_id == first.packet_id
    assert len({m.packet_id for m in got}) == 3
    for m in got:
        sub.send(Puback(m.packet_id))
    sub.expect_nothing(0.2)


def test_qos2_incoming_exactly_once_across_reconnect(client, level):
    cid = f"once-reconnect-pub-{level}"
    topic = f"qos/once-reconnect/{level}"
    sub = subscriber(client, level, f"once-reconnect-sub-{level}", topic, 0)
    pub = fresh(client, level, cid, **persistent(level))
    pub.publish(topic, b"just once", qos=2, packet_id=7)
    assert pub.expect(Pubrec).packet_id == 7
    pub.close()  # PUBREC "lost"
    assert sub.expect(Publish).payload == b"just once"

    pub = client(level)
    assert pub.connect(cid, **persistent(level)).session_present is True
    pub.send(Publish(topic, b"just once", 2, False, True, 7))
    rec = pub.expect(Pubrec)
    assert (rec.packet_id, rec.reason_code) == (7, ReasonCode.SUCCESS)
    pub.send(Pubrel(7))
    comp = pub.expect(Pubcomp)
    assert (comp.packet_id, comp.reason_code) == (7, ReasonCode.SUCCESS)
    sub.expect_nothing(0.3)


def test_pubrec_error_ends_qos2_flow_v5(client):
    topic = "qos/pubrec-error/v5"
    sub = subscriber(client, 5, "pubrec-error-sub-v5", topic, 2,
                     properties=Properties(receive_maximum=1))
    pub = publisher(client, 5, "pubrec-error-pub-v5")
    pub.publish(topic, b"refused", qos=2, packet_id=3)
    assert pub.expect(Pubrec).packet_id == 3
    pub.send(Pubrel(3))
    pub.expect(Pubcomp)
    pub.publish(topic, b"next", qos=2, packet_id=4)
    assert pub.expect(Pubrec).packet_id == 4
    pub.send(Pubrel(4))
    pub.expect(Pubcomp)
    msg = sub.expect(Publish)
    assert (msg.payload, msg.qos) == (b"refused", 2)
    # A PUBREC with a failure reason ends the exchange: no PUBREL, and the window
    # (receive maximum 1) is free for the next message.
    sub.send(Pubrec(msg.packet_id, ReasonCode.NOT_AUTHORIZED))
    msg = sub.expect(Publish)
    assert (msg.payload, msg.qos) == (b"next", 2)
    sub.send(Pubrec(msg.packet_id))
    assert sub.expect(Pubrel).packet_id == msg.packet_id
    sub.send(Pubcomp(msg.packet_id))
    sub.expect_nothing(0.2)


def test_default_inflight_window(client, level):
    """Without a smaller Receive Maximum the broker keeps at most max_inflight (100)
    QoS 1 messages unacknowledged per client, and queues the rest in order."""
    topic = f"qos/window100/{level}"
    sub = subscriber(client, level, f"window100-sub-{level}", topic, 1)
    pub = publisher(client, level, f"window100-pub-{level}")
    for i in range(1, 103):
        pub.publish(topic, str(i).encode(), qos=1, packet_id=i)
    assert [pub.expect(Puback).packet_id for _ in range(102)] == list(range(1, 103))
    got = [sub.expect(Publish) for _ in range(100)]
    assert [int(m.payload) for m in got] == list(range(1, 101))
    sub.expect_nothing(0.2)
    sub.send(Puback(got[0].packet_id))
    msg = sub.expect(Publish)
    assert msg.payload == b"101"
    sub.expect_nothing(0.1)
    sub.send(Puback(got[1].packet_id))
    assert sub.expect(Publish).payload == b"102"
