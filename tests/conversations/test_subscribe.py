"""SUBSCRIBE / UNSUBSCRIBE conversations: wildcards, ``$`` topics, granted QoS,
overlapping subscriptions, shared subscriptions and SUBACK/UNSUBACK reason codes.

Where a test must show that something was *not* delivered it publishes a sentinel
afterwards from the same publisher: messages from one publisher reach a subscriber in
order (4.6), so receiving the sentinel next proves nothing was sent before it.
"""

from __future__ import annotations

from roost.mqtt import (
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
    Unsuback,
    Unsubscribe,
)
from tests.broker import RawClient, online

OK = ReasonCode.SUCCESS


def invalid_filter(level: int) -> ReasonCode:
    """SUBACK failure code: 0x8F Topic Filter invalid (5.0), 0x80 Failure (3.1.1)."""
    return ReasonCode.TOPIC_FILTER_INVALID if level == 5 else ReasonCode.UNSPECIFIED_ERROR


def subscribe_many(c: RawClient, requests: list[SubscriptionRequest], packet_id: int = 1,
                   sub_id: int | None = None) -> Suback:
    props = Properties(subscription_identifiers=[sub_id] if sub_id else [])
    c.send(Subscribe(packet_id, requests, props))
    ack = c.expect(Suback)
    assert ack.packet_id == packet_id
    return ack  # type: ignore[return-value]


def publish_qos1(c: RawClient, topic: str, payload: bytes, packet_id: int = 1) -> None:
    c.publish(topic, payload, qos=1, packet_id=packet_id)
    assert c.expect(Puback).packet_id == packet_id


def publish_qos2(c: RawClient, topic: str, payload: bytes, packet_id: int = 1) -> None:
    c.publish(topic, payload, qos=2, packet_id=packet_id)
    assert c.expect(Pubrec).packet_id == packet_id
    c.send(Pubrel(packet_id))
    assert c.expect(Pubcomp).packet_id == packet_id


def topics_received(c: RawClient, n: int) -> list[str]:
    return [c.expect(Publish).topic for _ in range(n)]  # type: ignore[attr-defined]


def collect(c: RawClient, wait: float = 0.3) -> list[Publish]:
    """Every PUBLISH that arrives until the broker has been quiet for ``wait`` seconds."""
    got: list[Publish] = []
    while True:
        try:
            packet = c.recv(wait)
        except TimeoutError:
            c.sock.settimeout(5.0)
            return got
        assert isinstance(packet, Publish), f"expected PUBLISH, got {packet!r}"
        got.append(packet)


# -- Wildcards ------------------------------------------------------------------------


def test_plus_matches_exactly_one_level(client, level):
    t = f"sub{level}/plus"
    sub = online(client, level, f"plus-sub-{level}")
    assert sub.subscribe(f"{t}/+/x").reason_codes == [OK]
    pub = online(client, level, f"plus-pub-{level}")
    for topic in (f"{t}/a/x", f"{t}/a/b/x", f"{t}/x", f"{t}/a", f"{t}//x", f"{t}/b/x"):
        pub.publish(topic, b"m")
    # "+" fills exactly one level, an empty one included; never zero or two levels.
    assert topics_received(sub, 3) == [f"{t}/a/x", f"{t}//x", f"{t}/b/x"]
    sub.expect_nothing(0.2)


def test_hash_matches_parent_and_every_level_below(client, level):
    t = f"sub{level}/hash"
    sub = online(client, level, f"hash-sub-{level}")
    assert sub.subscribe(f"{t}/#").reason_codes == [OK]
    pub = online(client, level, f"hash-pub-{level}")
    for topic in (t, f"{t}x", f"sub{level}", f"{t}/a", f"{t}/a/b/c", f"{t}/", "other"):
        pub.publish(topic, b"m")
    pub.publish(f"{t}/end", b"sentinel")
    # "a/#" matches "a" itself (4.7.1.2) but not "ax" or the parent level.
    assert topics_received(sub, 5) == [t, f"{t}/a", f"{t}/a/b/c", f"{t}/", f"{t}/end"]


def test_plus_and_hash_combined(client, level):
    t = f"sub{level}/combo"
    sub = online(client, level, f"combo-sub-{level}")
    assert sub.subscribe(f"{t}/+/b/#").reason_codes == [OK]
    pub = online(client, level, f"combo-pub-{level}")
    for topic in (f"{t}/a/b", f"{t}/a/c", f"{t}/a/b/c/d", f"{t}/b", f"{t}/z/b/"):
        pub.publish(topic, b"m")
    pub.publish(f"{t}/end/b", b"sentinel")
    assert topics_received(sub, 4) == [f"{t}/a/b", f"{t}/a/b/c/d", f"{t}/z/b/", f"{t}/end/b"]


def test_dollar_topics_not_matched_by_leading_wildcards(client, level):
    t = f"dollar{level}"
    everything = online(client, level, f"dollar-all-{level}")
    assert everything.subscribe("#").reason_codes == [OK]
    plus = online(client, level, f"dollar-plus-{level}")
    assert plus.subscribe(f"+/{t}/x").reason_codes == [OK]
    dollar = online(client, level, f"dollar-foo-{level}")
    assert dollar.subscribe("$foo/#").reason_codes == [OK]
    dollar_plus = online(client, level, f"dollar-fooplus-{level}")
    assert dollar_plus.subscribe("$foo/+/x").reason_codes == [OK]

    pub = online(client, level, f"dollar-pub-{level}")
    pub.publish(f"$foo/{t}/x", b"foo")
    pub.publish(f"$SYS/{t}/x", b"sys")
    pub.publish(f"plain/{t}/x", b"sentinel")

    # Filters starting with a wildcard never match topics starting with '$' (4.7.2).
    for c in (everything, plus):
        msg = c.expect(Publish)
        assert (msg.topic, msg.payload) == (f"plain/{t}/x", b"sentinel")
    for c in (dollar, dollar_plus):
        msg = c.expect(Publish)
        assert (msg.topic, msg.payload) == (f"$foo/{t}/x", b"foo")
    dollar.expect_nothing(0.2)
    dollar_plus.expect_nothing(0.01)


# -- Granted QoS ----------------------------------------------------------------------


def test_subscription_qos_downgrades_message_qos(client, level):
    t = f"sub{level}/qos"
    sub = online(client, level, f"qos-sub-{level}")
    reqs = [SubscriptionRequest(f"{t}/one", 1), SubscriptionRequest(f"{t}/zero", 0),
            SubscriptionRequest(f"{t}/two", 2)]
    assert subscribe_many(sub, reqs).reason_codes == [
        ReasonCode.GRANTED_QOS_1, OK, ReasonCode.GRANTED_QOS_2]
    pub = online(client, level, f"qos-pub-{level}")

    publish_qos2(pub, f"{t}/one", b"2to1", 10)
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos) == (f"{t}/one", b"2to1", 1)
    assert msg.packet_id is not None
    sub.send(Puback(msg.packet_id))

    publish_qos1(pub, f"{t}/zero", b"1to0", 11)
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos, msg.packet_id) == (f"{t}/zero", b"1to0", 0, None)

    # A message is never upgraded: QoS 1 to a QoS 2 subscription stays QoS 1.
    publish_qos1(pub, f"{t}/two", b"1to2", 12)
    msg = sub.expect(Publish)
    assert (msg.topic, msg.qos) == (f"{t}/two", 1)
    sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]

    publish_qos2(pub, f"{t}/two", b"2to2", 13)
    msg = sub.expect(Publish)
    assert (msg.topic, msg.qos) == (f"{t}/two", 2)
    sub.send(Pubrec(msg.packet_id))  # type: ignore[arg-type]
    assert sub.expect(Pubrel).packet_id == msg.packet_id
    sub.send(Pubcomp(msg.packet_id))  # type: ignore[arg-type]
    sub.expect_nothing(0.2)


# -- Overlapping and repeated subscriptions --------------------------------------------


def test_overlapping_subscriptions_deliver_one_copy_at_highest_qos(client, level):
    t = f"sub{level}/overlap"
    sub = online(client, level, f"overlap-sub-{level}")
    assert sub.subscribe(f"{t}/+", qos=0, packet_id=1).reason_codes == [OK]
    assert sub.subscribe(f"{t}/#", qos=1, packet_id=2).reason_codes == [
        ReasonCode.GRANTED_QOS_1]
    assert sub.subscribe(f"{t}/a", qos=0, packet_id=3).reason_codes == [OK]
    pub = online(client, level, f"overlap-pub-{level}")
    publish_qos2(pub, f"{t}/a", b"both", 5)
    pub.publish(f"{t}/z/end", b"sentinel")

    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos) == (f"{t}/a", b"both", 1)
    sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload) == (f"{t}/z/end", b"sentinel")


def test_overlapping_subscriptions_carry_every_subscription_identifier(client):
    t = "sub5/ids"
    sub = online(client, 5, "ids-sub")
    assert subscribe_many(sub, [SubscriptionRequest(f"{t}/+", 0)], 1, sub_id=7).reason_codes \
        == [OK]
    assert subscribe_many(sub, [SubscriptionRequest(f"{t}/#", 1)], 2, sub_id=300).reason_codes \
        == [ReasonCode.GRANTED_QOS_1]
    assert subscribe_many(sub, [SubscriptionRequest(f"{t}/a", 0)], 3).reason_codes == [OK]
    pub = online(client, 5, "ids-pub")
    publish_qos1(pub, f"{t}/a", b"both")
    pub.publish(f"{t}/b/c", b"one")

    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos) == (f"{t}/a", b"both", 1)
    # One copy, at the maximum QoS, with the identifiers of both matching subscriptions.
    assert sorted(msg.properties.subscription_identifiers) == [7, 300]
    sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]
    msg = sub.expect(Publish)
    assert (msg.topic, msg.qos) == (f"{t}/b/c", 0)
    assert msg.properties.subscription_identifiers == [300]


def test_subscription_identifier_applies_to_every_filter_of_the_subscribe(client):
    t = "sub5/idall"
    sub = online(client, 5, "idall-sub")
    reqs = [SubscriptionRequest(f"{t}/a", 0), SubscriptionRequest(f"{t}/b", 0)]
    assert subscribe_many(sub, reqs, sub_id=268_435_455).reason_codes == [OK, OK]
    assert subscribe_many(sub, [SubscriptionRequest(f"{t}/c", 0)], 2).reason_codes == [OK]
    pub = online(client, 5, "idall-pub")
    for x in "abc":
        pub.publish(f"{t}/{x}", b"m")
    got = [sub.expect(Publish) for _ in range(3)]
    assert [(m.topic, m.properties.subscription_identifiers) for m in got] == [
        (f"{t}/a", [268_435_455]), (f"{t}/b", [268_435_455]), (f"{t}/c", [])]


def test_resubscribing_replaces_the_subscription(client, level):
    t = f"sub{level}/resub"
    sub = online(client, level, f"resub-sub-{level}")
    props = Properties(subscription_identifiers=[5] if level == 5 else [])
    assert sub.subscribe(t, qos=0, properties=props).reason_codes == [OK]
    pub = online(client, level, f"resub-pub-{level}")
    publish_qos1(pub, t, b"first", 1)
    msg = sub.expect(Publish)
    assert (msg.payload, msg.qos) == (b"first", 0)

    props = Properties(subscription_identifiers=[6] if level == 5 else [])
    assert sub.subscribe(t, qos=1, packet_id=2, properties=props).reason_codes == [
        ReasonCode.GRANTED_QOS_1]
    publish_qos1(pub, t, b"second", 2)
    pub.publish(t, b"sentinel")
    msg = sub.expect(Publish)
    assert (msg.payload, msg.qos) == (b"second", 1)
    if level == 5:
        assert msg.properties.subscription_identifiers == [6]
    sub.send(Puback(msg.packet_id))  # type: ignore[arg-type]
    msg = sub.expect(Publish)
    assert (msg.payload, msg.qos) == (b"sentinel", 0)


# -- UNSUBSCRIBE ----------------------------------------------------------------------


def test_unsubscribe_stops_delivery(client, level):
    t = f"sub{level}/unsub"
    sub = online(client, level, f"unsub-sub-{level}")
    reqs = [SubscriptionRequest(f"{t}/a", 0), SubscriptionRequest(f"{t}/b", 0)]
    assert subscribe_many(sub, reqs).reason_codes == [OK, OK]
    pub = online(client, level, f"unsub-pub-{level}")
    pub.publish(f"{t}/a", b"before")
    assert sub.expect(Publish).payload == b"before"

    sub.send(Unsubscribe(9, [f"{t}/a", f"{t}/never", f"{t}/a"]))
    ack = sub.expect(Unsuback)
    assert ack.packet_id == 9
    if level == 5:
        assert ack.reason_codes == [OK, ReasonCode.NO_SUBSCRIPTION_EXISTED,
                                    ReasonCode.NO_SUBSCRIPTION_EXISTED]
    else:
        assert ack.reason_codes == []

    pub.publish(f"{t}/a", b"after")
    pub.publish(f"{t}/b", b"sentinel")
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload) == (f"{t}/b", b"sentinel")


def test_unsubscribe_wildcard_filter_is_exact(client, level):
    """UNSUBSCRIBE compares filters character by character; it does not match them."""
    t = f"sub{level}/unsubexact"
    sub = online(client, level, f"unsubexact-sub-{level}")
    assert sub.subscribe(f"{t}/#").reason_codes == [OK]
    sub.send(Unsubscribe(3, [f"{t}/+"]))
    ack = sub.expect(Unsuback)
    if level == 5:
        assert ack.reason_codes == [ReasonCode.NO_SUBSCRIPTION_EXISTED]
    pub = online(client, level, f"unsubexact-pub-{level}")
    pub.publish(f"{t}/x", b"still")
    assert sub.expect(Publish).payload == b"still"


# -- Shared subscriptions -------------------------------------------------------------


def test_shared_subscription_distributes_messages(client, level):
    t = f"sub{level}/shared"
    members = {}
    for name, f in (("g1a", f"$share/g1/{t}"), ("g1b", f"$share/g1/{t}"),
                    ("g2a", f"$share/g2/{t}"), ("g2b", f"$share/g2/{t}"), ("plain", t)):
        c = online(client, level, f"shared-{name}-{level}")
        assert c.subscribe(f, qos=0).reason_codes == [OK]
        members[name] = c
    pub = online(client, level, f"shared-pub-{level}")
    n = 10
    sent = [f"m{i}".encode() for i in range(n)]
    for payload in sent:
        pub.publish(t, payload)

    # Wait for everything at the plain subscriber; the broker wrote the group copies in
    # the same turns, so a short quiet period suffices for the others.
    received = {"plain": [members["plain"].expect(Publish) for _ in range(n)]}
    received.update((name, collect(c, 0.1)) for name, c in members.items() if name != "plain")
    members["plain"].expect_nothing(0.01)
    assert all(m.topic == t and m.qos == 0 for msgs in received.values() for m in msgs)
    got = {name: [m.payload for m in msgs] for name, msgs in received.items()}
    # A plain subscriber alongside the groups receives everything, in order.
    assert got["plain"] == sent
    for group in ("g1", "g2"):
        a, b = got[f"{group}a"], got[f"{group}b"]
        # Each message goes to exactly one member of each group; both members get some.
        assert sorted(a + b) == sorted(sent), group
        assert a and b, (group, a, b)


def test_shared_subscription_skips_members_that_left(client, level):
    t = f"sub{level}/sharedleft"
    stay = online(client, level, f"sharedleft-stay-{level}")
    leave = online(client, level, f"sharedleft-leave-{level}")
    for c in (stay, leave):
        assert c.subscribe(f"$share/g/{t}").reason_codes == [OK]
    leave.send(Disconnect())
    assert leave.expect_closed() == []  # the broker has processed the DISCONNECT
    pub = online(client, level, f"sharedleft-pub-{level}")
    sent = [f"m{i}".encode() for i in range(4)]
    for payload in sent:
        pub.publish(t, payload)
    assert [stay.expect(Publish).payload for _ in sent] == sent


def test_shared_subscription_topic_and_unsubscribe(client, level):
    t = f"sub{level}/sharedunsub"
    member = online(client, level, f"sharedunsub-m-{level}")
    shared = f"$share/grp/{t}/+"
    assert member.subscribe(shared, qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    pub = online(client, level, f"sharedunsub-pub-{level}")
    publish_qos1(pub, f"{t}/x", b"one")
    msg = member.expect(Publish)
    # The PUBLISH carries the real topic name, not the $share filter.
    assert (msg.topic, msg.payload, msg.qos) == (f"{t}/x", b"one", 1)
    member.send(Puback(msg.packet_id))  # type: ignore[arg-type]

    member.send(Unsubscribe(4, [shared]))
    ack = member.expect(Unsuback)
    if level == 5:
        assert ack.reason_codes == [OK]
    assert member.subscribe(f"{t}/y", packet_id=5).reason_codes == [OK]
    pub.publish(f"{t}/x", b"gone")
    pub.publish(f"{t}/y", b"sentinel")
    assert member.expect(Publish).payload == b"sentinel"


def test_invalid_shared_subscriptions_are_refused(client, level):
    t = f"sub{level}/badshare"
    sub = online(client, level, f"badshare-{level}")
    reqs = [SubscriptionRequest(f, 1) for f in (
        "$share/g", "$share/+/x", "$share/#/x", "$share//x", "$share/g/", f"$share/g/{t}",
        "$share/g/a#")]
    bad = invalid_filter(level)
    assert subscribe_many(sub, reqs).reason_codes == [
        bad, bad, bad, bad, bad, ReasonCode.GRANTED_QOS_1, bad]


def test_suback_has_one_code_per_filter_in_order(client, level):
    t = f"sub{level}/multi"
    sub = online(client, level, f"multi-{level}")
    reqs = [SubscriptionRequest(f"{t}/q2", 2), SubscriptionRequest(f"{t}/bad#", 1),
            SubscriptionRequest(f"{t}/q0", 0), SubscriptionRequest(f"{t}/a+/b", 0),
            SubscriptionRequest(f"{t}/q1", 1), SubscriptionRequest(f"{t}/#/x", 2)]
    bad = invalid_filter(level)
    assert subscribe_many(sub, reqs, packet_id=4242).reason_codes == [
        ReasonCode.GRANTED_QOS_2, bad, OK, bad, ReasonCode.GRANTED_QOS_1, bad]
    # The valid filters in the same packet are in force.
    pub = online(client, level, f"multi-pub-{level}")
    pub.publish(f"{t}/q0", b"x")
    msg = sub.expect(Publish)
    assert (msg.topic, msg.qos) == (f"{t}/q0", 0)
