"""Retained messages (3.3.1.3, 5.0 3.3.1.3 and 3.8.3.1): delivery on subscribe, deletion,
the retain flag on forwarding, Retain As Published, Retain Handling, QoS and expiry.

Retained messages are sent in the SUBACK's wake, before anything published later, so
a non-retained sentinel published to the same topic after the SUBACK proves that no
retained message was sent when it arrives first.
"""

from __future__ import annotations

import time

from roost.mqtt import (
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
    Unsuback,
    Unsubscribe,
)
from tests.broker import RawClient, online

OK = ReasonCode.SUCCESS


def retain(c: RawClient, topic: str, payload: bytes, qos: int = 1, packet_id: int = 1,
           properties: Properties | None = None) -> None:
    """Publish a retained message and wait until the broker has it."""
    c.publish(topic, payload, qos=qos, retain=True, packet_id=packet_id,
              properties=properties)
    if qos == 1:
        assert c.expect(Puback).packet_id == packet_id
    elif qos == 2:
        assert c.expect(Pubrec).packet_id == packet_id
        c.send(Pubrel(packet_id))
        assert c.expect(Pubcomp).packet_id == packet_id


def subscribe(c: RawClient, topic_filter: str, qos: int = 0, packet_id: int = 1,
              sub_id: int | None = None, **opts: object) -> list[ReasonCode]:
    props = Properties(subscription_identifiers=[sub_id] if sub_id else [])
    c.send(Subscribe(packet_id, [SubscriptionRequest(topic_filter, qos, **opts)],  # type: ignore[arg-type]
                     props))
    ack = c.expect(Suback)
    assert ack.packet_id == packet_id
    return ack.reason_codes  # type: ignore[attr-defined, no-any-return]


def expect_pub(c: RawClient) -> Publish:
    return c.expect(Publish)  # type: ignore[return-value]


def test_retained_message_sent_on_subscribe(client, level):
    t = f"ret{level}/basic"
    pub = online(client, level, f"basic-pub-{level}")
    retain(pub, t, b"kept")
    sub = online(client, level, f"basic-sub-{level}")
    assert subscribe(sub, t, qos=1) == [ReasonCode.GRANTED_QOS_1]
    msg = expect_pub(sub)
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == (t, b"kept", 1, True)
    sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]
    sub.expect_nothing(0.2)


def test_newer_retained_message_replaces_older(client, level):
    t = f"ret{level}/replace"
    pub = online(client, level, f"replace-pub-{level}")
    retain(pub, t, b"old", packet_id=1)
    retain(pub, t, b"new", packet_id=2)
    pub.publish(t, b"not retained")  # a non-retained PUBLISH leaves the retained one alone
    sub = online(client, level, f"replace-sub-{level}")
    assert subscribe(sub, t) == [OK]
    pub.publish(t, b"sentinel")
    msg = expect_pub(sub)
    assert (msg.payload, msg.retain) == (b"new", True)
    msg = expect_pub(sub)
    assert (msg.payload, msg.retain) == (b"sentinel", False)


def test_retained_message_qos_is_minimum_of_message_and_subscription(client, level):
    t = f"ret{level}/qos"
    pub = online(client, level, f"qos-pub-{level}")
    retain(pub, f"{t}/two", b"q2", qos=2, packet_id=1)
    retain(pub, f"{t}/one", b"q1", qos=1, packet_id=2)
    retain(pub, f"{t}/zero", b"q0", qos=0)
    sub = online(client, level, f"qos-sub-{level}")

    assert subscribe(sub, f"{t}/two", qos=1, packet_id=1) == [ReasonCode.GRANTED_QOS_1]
    msg = expect_pub(sub)
    assert (msg.payload, msg.qos, msg.retain) == (b"q2", 1, True)
    sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]

    assert subscribe(sub, f"{t}/one", qos=0, packet_id=2) == [OK]
    msg = expect_pub(sub)
    assert (msg.payload, msg.qos, msg.retain, msg.packet_id) == (b"q1", 0, True, None)

    assert subscribe(sub, f"{t}/zero", qos=2, packet_id=3) == [ReasonCode.GRANTED_QOS_2]
    msg = expect_pub(sub)
    assert (msg.payload, msg.qos, msg.retain) == (b"q0", 0, True)

    other = online(client, level, f"qos-sub2-{level}")
    assert subscribe(other, f"{t}/two", qos=2) == [ReasonCode.GRANTED_QOS_2]
    msg = expect_pub(other)
    assert (msg.payload, msg.qos, msg.retain) == (b"q2", 2, True)


def test_empty_retained_payload_deletes_but_is_forwarded(client, level):
    t = f"ret{level}/delete"
    current = online(client, level, f"delete-cur-{level}")
    assert subscribe(current, t) == [OK]
    pub = online(client, level, f"delete-pub-{level}")
    retain(pub, t, b"soon gone", packet_id=1)
    msg = expect_pub(current)
    assert (msg.payload, msg.retain) == (b"soon gone", False)

    retain(pub, t, b"", packet_id=2)
    # A zero-byte retained PUBLISH is still forwarded as normal (3.3.1-10 / 3.3.1-6).
    msg = expect_pub(current)
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == (t, b"", 0, False)

    newcomer = online(client, level, f"delete-new-{level}")
    assert subscribe(newcomer, t) == [OK]
    pub.publish(t, b"sentinel")
    msg = expect_pub(newcomer)
    assert (msg.payload, msg.retain) == (b"sentinel", False)


def test_forwarded_retained_message_has_retain_0(client, level):
    t = f"ret{level}/forward"
    sub = online(client, level, f"forward-sub-{level}")
    assert subscribe(sub, t, qos=1) == [ReasonCode.GRANTED_QOS_1]
    pub = online(client, level, f"forward-pub-{level}")
    retain(pub, t, b"live")
    msg = expect_pub(sub)
    # Sent because of an established subscription: retain flag 0 (3.3.1-9, 5.0 RAP=0).
    assert (msg.payload, msg.qos, msg.retain) == (b"live", 1, False)


def test_retain_as_published_keeps_the_flag(client):
    t = "ret5/rap"
    rap = online(client, 5, "rap-sub")
    assert subscribe(rap, t, qos=1, packet_id=1, retain_as_published=True) == [
        ReasonCode.GRANTED_QOS_1]
    plain = online(client, 5, "rap-plain")
    assert subscribe(plain, t, qos=1) == [ReasonCode.GRANTED_QOS_1]
    pub = online(client, 5, "rap-pub")
    retain(pub, t, b"as published")
    pub.publish(t, b"not retained")
    msg = expect_pub(rap)
    assert (msg.payload, msg.retain) == (b"as published", True)
    msg = expect_pub(rap)
    assert (msg.payload, msg.retain) == (b"not retained", False)
    msg = expect_pub(plain)
    assert (msg.payload, msg.retain) == (b"as published", False)
    msg = expect_pub(plain)
    assert (msg.payload, msg.retain) == (b"not retained", False)


def test_retain_handling(client):
    t = "ret5/rh"
    pub = online(client, 5, "rh-pub")
    retain(pub, t, b"r")
    for handling, first, again in ((0, True, True), (1, True, False), (2, False, False)):
        sub = online(client, 5, f"rh-sub-{handling}")
        for packet_id, expected in ((1, first), (2, again)):
            assert subscribe(sub, t, packet_id=packet_id, retain_handling=handling) == [OK]
            pub.publish(t, b"sentinel")
            got = [expect_pub(sub) for _ in range(1 + expected)]
            seen = [(m.payload, m.retain) for m in got]
            want = [(b"r", True)] * expected + [(b"sentinel", False)]
            assert seen == want, (handling, packet_id)


def test_retain_handling_1_sends_again_after_unsubscribe(client):
    t = "ret5/rh1"
    pub = online(client, 5, "rh1-pub")
    retain(pub, t, b"r")
    sub = online(client, 5, "rh1-sub")
    assert subscribe(sub, t, packet_id=1, retain_handling=1) == [OK]
    assert expect_pub(sub).payload == b"r"
    sub.send(Unsubscribe(2, [t]))
    assert sub.expect(Unsuback).reason_codes == [OK]
    assert subscribe(sub, t, packet_id=3, retain_handling=1) == [OK]
    msg = expect_pub(sub)
    assert (msg.payload, msg.retain) == (b"r", True)


def test_wildcard_subscription_gets_every_matching_retained_message(client, level):
    t = f"ret{level}/wild"
    pub = online(client, level, f"wild-pub-{level}")
    topics = [t, f"{t}/a", f"{t}/b/c", f"{t}/d/e/f"]
    for i, topic in enumerate([*topics, f"{t}x", f"ret{level}"], start=1):
        retain(pub, topic, topic.encode(), packet_id=i)

    sub = online(client, level, f"wild-sub-{level}")
    assert subscribe(sub, f"{t}/#", packet_id=1) == [OK]
    pub.publish(f"{t}/sentinel", b"sentinel")
    got = [expect_pub(sub) for _ in topics]
    assert sorted(m.topic for m in got) == sorted(topics)
    assert all(m.retain and m.payload == m.topic.encode() for m in got)
    assert expect_pub(sub).payload == b"sentinel"

    plus = online(client, level, f"wild-plus-{level}")
    assert subscribe(plus, f"{t}/+", packet_id=1) == [OK]
    msg = expect_pub(plus)
    assert (msg.topic, msg.retain) == (f"{t}/a", True)
    pub.publish(f"{t}/sentinel", b"sentinel")
    assert expect_pub(plus).payload == b"sentinel"


def test_retained_dollar_topics_not_matched_by_leading_wildcards(client, level):
    t = f"retdollar{level}"
    pub = online(client, level, f"dollar-pub-{level}")
    retain(pub, f"$r/{t}", b"dollar")
    sub = online(client, level, f"dollar-sub-{level}")
    assert subscribe(sub, f"+/{t}") == [OK]
    pub.publish(f"x/{t}", b"sentinel")
    assert expect_pub(sub).payload == b"sentinel"
    assert subscribe(sub, f"$r/{t}/#", packet_id=2) == [OK]
    msg = expect_pub(sub)
    assert (msg.topic, msg.payload, msg.retain) == (f"$r/{t}", b"dollar", True)

    retain(pub, f"plain/{t}", b"plain", packet_id=2)
    everything = online(client, level, f"dollar-all-{level}")
    assert subscribe(everything, "#") == [OK]
    pub.publish(f"zz/{t}", b"sentinel")
    topics = []
    while (msg := expect_pub(everything)).payload != b"sentinel":
        topics.append(msg.topic)
    # "#" gets every retained message of this module except the "$" ones.
    assert f"plain/{t}" in topics
    assert not [x for x in topics if x.startswith("$")], topics


def test_retained_message_carries_subscription_identifier(client):
    t = "ret5/subid"
    pub = online(client, 5, "subid-pub")
    retain(pub, t, b"r")
    sub = online(client, 5, "subid-sub")
    assert subscribe(sub, "ret5/+", sub_id=42) == [OK]
    msg = expect_pub(sub)
    assert (msg.topic, msg.retain) == (t, True)
    assert msg.properties.subscription_identifiers == [42]


def test_retained_message_expires(client):
    t = "ret5/expiry"
    pub = online(client, 5, "expiry-pub")
    retain(pub, t, b"short-lived", properties=Properties(message_expiry_interval=1))
    retain(pub, f"{t}/long", b"long-lived", packet_id=2,
           properties=Properties(message_expiry_interval=100))
    early = online(client, 5, "expiry-early")
    assert subscribe(early, t) == [OK]
    msg = expect_pub(early)
    assert (msg.payload, msg.retain) == (b"short-lived", True)
    assert msg.properties.message_expiry_interval == 1

    time.sleep(1.1)
    late = online(client, 5, "expiry-late")
    assert subscribe(late, f"{t}/#") == [OK]
    msg = expect_pub(late)
    # Only the unexpired one, its expiry interval reduced by the time it waited.
    assert (msg.topic, msg.payload) == (f"{t}/long", b"long-lived")
    assert msg.properties.message_expiry_interval == 99
    pub.publish(t, b"sentinel")
    assert expect_pub(late).payload == b"sentinel"


def test_retained_messages_not_sent_to_shared_subscriptions(client, level):
    t = f"ret{level}/shared"
    pub = online(client, level, f"shared-pub-{level}")
    retain(pub, t, b"r")
    sub = online(client, level, f"shared-sub-{level}")
    assert subscribe(sub, f"$share/g/{t}", qos=1) == [ReasonCode.GRANTED_QOS_1]
    pub.publish(t, b"sentinel")
    msg = expect_pub(sub)
    assert (msg.payload, msg.retain) == (b"sentinel", False)
    # A plain subscription by the same client still gets the retained message.
    assert subscribe(sub, t, packet_id=2) == [OK]
    msg = expect_pub(sub)
    assert (msg.payload, msg.retain) == (b"r", True)
