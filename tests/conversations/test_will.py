"""Will messages (3.1.2.5, 5.0 3.1.2.5 and 3.1.3.2.2): when they are published, when they
are not, with which QoS, retain flag and properties, and the 5.0 Will Delay Interval.

To show a will was *not* published, the test waits until the broker has closed the
will's connection (so its decision is made), then publishes a sentinel to the will
topic: it must be the next thing the subscriber receives.
"""

from __future__ import annotations

import time

from roost.mqtt import (
    Disconnect,
    Properties,
    Puback,
    Publish,
    ReasonCode,
    Will,
)
from tests.broker import RawClient, online

OK = ReasonCode.SUCCESS


def watcher(client, level: int, topic: str, qos: int = 1, name: str = "w") -> RawClient:
    c = online(client, level, f"{name}-{topic}")
    assert c.subscribe(topic, qos=qos).reason_codes == [ReasonCode(qos)]
    return c


def expect_will(c: RawClient, topic: str, payload: bytes, timeout: float = 5.0) -> Publish:
    msg = c.expect(Publish, timeout)
    c.sock.settimeout(5.0)
    assert (msg.topic, msg.payload) == (topic, payload)
    if msg.qos:
        c.send(Puback(msg.packet_id))  # type: ignore[arg-type, attr-defined]
    return msg  # type: ignore[return-value]


def expect_no_will(client, level: int, c: RawClient, topic: str) -> None:
    """Nothing but a sentinel published now arrives at ``c``."""
    pub = online(client, level, f"sentinel-{topic}")
    pub.publish(topic, b"sentinel")
    msg = c.expect(Publish)
    assert (msg.topic, msg.payload) == (topic, b"sentinel"), msg


def session_props(expiry: int) -> Properties:
    return Properties(session_expiry_interval=expiry)


def test_will_published_on_abnormal_disconnect(client, level):
    t = f"will{level}/abnormal"
    sub1 = watcher(client, level, t, qos=1, name="q1")
    sub0 = watcher(client, level, t, qos=0, name="q0")
    c = online(client, level, f"abnormal-{level}",
               will=Will(t, b"gone", qos=1, retain=True))
    c.close()  # no DISCONNECT

    msg = expect_will(sub1, t, b"gone")
    # Forwarded to an existing subscription: its QoS, and retain 0 (no RAP).
    assert (msg.qos, msg.retain) == (1, False)
    msg = expect_will(sub0, t, b"gone")
    assert (msg.qos, msg.retain) == (0, False)
    # The will was retained: a new subscriber sees it with the retain flag.
    late = online(client, level, f"abnormal-late-{level}")
    assert late.subscribe(t, qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    msg = expect_will(late, t, b"gone")
    assert (msg.qos, msg.retain) == (1, True)


def test_will_qos2_not_retained(client, level):
    t = f"will{level}/qos2"
    sub = watcher(client, level, t, qos=2)
    c = online(client, level, f"qos2-{level}", will=Will(t, b"bye", qos=2))
    c.close()
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == (t, b"bye", 2, False)
    late = online(client, level, f"qos2-late-{level}")
    assert late.subscribe(t).reason_codes == [OK]
    expect_no_will(client, level, late, t)


def test_no_will_after_normal_disconnect(client, level):
    t = f"will{level}/normal"
    sub = watcher(client, level, t)
    c = online(client, level, f"normal-{level}", will=Will(t, b"should not", qos=1))
    c.send(Disconnect())
    assert c.expect_closed() == []
    expect_no_will(client, level, sub, t)


def test_will_published_on_disconnect_with_will_message(client):
    t = "will5/0x04"
    sub = watcher(client, 5, t)
    c = online(client, 5, "with-will", will=Will(t, b"on purpose", qos=1))
    c.send(Disconnect(ReasonCode.DISCONNECT_WITH_WILL))
    assert c.expect_closed() == []
    msg = expect_will(sub, t, b"on purpose")
    assert (msg.qos, msg.retain) == (1, False)


def test_will_published_when_server_closes_on_protocol_error(client, level):
    t = f"will{level}/violation"
    sub = watcher(client, level, t)
    c = online(client, level, f"violation-{level}", will=Will(t, b"broken"))
    c.publish("not/valid/#", b"wildcards are not allowed in topic names")
    got = c.expect_closed()
    if level == 5:
        assert [(type(p), p.reason_code) for p in got] == [  # type: ignore[union-attr]
            (Disconnect, ReasonCode.TOPIC_NAME_INVALID)]
    else:
        assert got == []
    expect_will(sub, t, b"broken")


def test_invalid_session_expiry_on_disconnect_publishes_will(client):
    """A non-zero Session Expiry on DISCONNECT after 0 at CONNECT is a Protocol Error: the
    DISCONNECT is not valid (3.14.2.2.2), so the will is published."""
    t = "will5/badexpiry"
    sub = watcher(client, 5, t)
    c = online(client, 5, "badexpiry", will=Will(t, b"invalid disconnect"))
    c.send(Disconnect(properties=session_props(30)))
    got = c.expect_closed()
    assert [(type(p), p.reason_code) for p in got] == [  # type: ignore[union-attr]
        (Disconnect, ReasonCode.PROTOCOL_ERROR)]
    expect_will(sub, t, b"invalid disconnect")


def test_will_published_on_keepalive_timeout(client, level):
    t = f"will{level}/keepalive"
    sub = watcher(client, level, t)
    c = online(client, level, f"keepalive-{level}", keepalive=1, will=Will(t, b"silent"))
    start = time.monotonic()
    got = c.expect_closed(timeout=4)
    elapsed = time.monotonic() - start
    # The broker allows one and a half keepalive periods (3.1.2.10).
    assert 1.2 <= elapsed <= 3.0, elapsed
    if level == 5:
        assert [(type(p), p.reason_code) for p in got] == [  # type: ignore[union-attr]
            (Disconnect, ReasonCode.KEEP_ALIVE_TIMEOUT)]
    else:
        assert got == []
    expect_will(sub, t, b"silent")


def test_will_published_on_takeover(client, level):
    t = f"will{level}/takeover"
    sub = watcher(client, level, t)
    old = online(client, level, f"takeover-{level}", will=Will(t, b"taken over"))
    new = online(client, level, f"takeover-{level}", clean=True)
    got = old.expect_closed()
    if level == 5:
        assert [(type(p), p.reason_code) for p in got] == [  # type: ignore[union-attr]
            (Disconnect, ReasonCode.SESSION_TAKEN_OVER)]
    else:
        assert got == []
    expect_will(sub, t, b"taken over")
    new.send(Disconnect())


def test_delayed_will_not_published_on_takeover_that_resumes_the_session(client):
    t = "will5/resume"
    sub = watcher(client, 5, t)
    will = Will(t, b"delayed", properties=Properties(will_delay_interval=10))
    online(client, 5, "resume", properties=session_props(60), will=will)
    new = client(5)
    ack = new.connect("resume", clean=False, properties=session_props(0))
    assert (ack.reason_code, ack.session_present) == (OK, True)
    expect_no_will(client, 5, sub, t)
    new.send(Disconnect())


def test_delayed_will_published_on_takeover_with_clean_start(client):
    """Clean Start ends the old session, and a session's end publishes its will."""
    t = "will5/cleanstart"
    sub = watcher(client, 5, t)
    will = Will(t, b"session ended", properties=Properties(will_delay_interval=30))
    old = online(client, 5, "cleanstart", properties=session_props(60), will=will)
    new = client(5)
    ack = new.connect("cleanstart", clean=True)
    assert (ack.reason_code, ack.session_present) == (OK, False)
    assert [p.reason_code for p in old.expect_closed()] == [  # type: ignore[attr-defined]
        ReasonCode.SESSION_TAKEN_OVER]
    expect_will(sub, t, b"session ended", timeout=2)
    new.send(Disconnect())


def test_will_delay_interval(client):
    t = "will5/delay"
    sub = watcher(client, 5, t)
    will = Will(t, b"late", properties=Properties(will_delay_interval=2))
    c = online(client, 5, "delay", properties=session_props(60), will=will)
    c.close()
    start = time.monotonic()
    expect_will(sub, t, b"late", timeout=4)
    elapsed = time.monotonic() - start
    assert 1.8 <= elapsed <= 3.0, elapsed


def test_will_delay_cancelled_by_reconnect(client):
    t = "will5/cancelled"
    sub = watcher(client, 5, t)
    will = Will(t, b"never", properties=Properties(will_delay_interval=2))
    c = online(client, 5, "cancelled", properties=session_props(60), will=will)
    c.close()
    time.sleep(0.3)
    again = client(5)
    ack = again.connect("cancelled", clean=False, properties=session_props(60))
    assert (ack.reason_code, ack.session_present) == (OK, True)
    sub.expect_nothing(2.2)
    again.send(Disconnect(properties=session_props(0)))


def test_will_delay_ignored_when_session_ends_at_disconnect(client):
    """Session Expiry 0 ends the session with the connection, and the will with it."""
    t = "will5/nosession"
    sub = watcher(client, 5, t)
    will = Will(t, b"at once", properties=Properties(will_delay_interval=30))
    c = online(client, 5, "nosession", will=will)
    c.close()
    expect_will(sub, t, b"at once", timeout=1)


def test_delayed_will_published_when_client_returns_with_clean_start(client):
    t = "will5/cleanreturn"
    sub = watcher(client, 5, t)
    will = Will(t, b"old session", properties=Properties(will_delay_interval=30))
    c = online(client, 5, "cleanreturn", properties=session_props(60), will=will)
    c.close()
    time.sleep(0.2)
    again = client(5)
    ack = again.connect("cleanreturn", clean=True)
    assert (ack.reason_code, ack.session_present) == (OK, False)
    expect_will(sub, t, b"old session", timeout=1)
    again.send(Disconnect())


def test_will_sent_when_session_expires_before_will_delay(client):
    t = "will5/expires"
    sub = watcher(client, 5, t)
    will = Will(t, b"session over", properties=Properties(will_delay_interval=30))
    c = online(client, 5, "expires", properties=session_props(1), will=will)
    c.close()
    start = time.monotonic()
    expect_will(sub, t, b"session over", timeout=4)
    elapsed = time.monotonic() - start
    assert 0.8 <= elapsed <= 2.0, elapsed
    again = client(5)
    assert again.connect("expires", clean=False).session_present is False


def test_will_properties_are_forwarded(client):
    t = "will5/props"
    sub = watcher(client, 5, t)
    props = Properties(payload_format_indicator=1, message_expiry_interval=100,
                       content_type="text/plain", response_topic="will5/reply",
                       correlation_data=b"\x00\x01corr",
                       user_properties=[("k", "v1"), ("k", "v2"), ("other", "x")],
                       will_delay_interval=0)
    c = online(client, 5, "props", will=Will(t, "adiós".encode(), qos=1, properties=props))
    c.close()
    msg = expect_will(sub, t, "adiós".encode())
    p = msg.properties
    assert p.payload_format_indicator == 1
    assert p.content_type == "text/plain"
    assert p.response_topic == "will5/reply"
    assert p.correlation_data == b"\x00\x01corr"
    assert p.user_properties == [("k", "v1"), ("k", "v2"), ("other", "x")]
    assert p.message_expiry_interval == 100
    assert p.will_delay_interval is None


def test_will_sent_to_311_subscriber_from_50_client(client):
    t = "will-mixed/x"
    sub = watcher(client, 4, t)
    props = Properties(user_properties=[("a", "b")], content_type="c")
    c = online(client, 5, "mixed", will=Will(t, b"cross-version", qos=1, properties=props))
    c.close()
    msg = expect_will(sub, t, b"cross-version")
    assert (msg.qos, msg.retain) == (1, False)
