"""Shared-subscription messages go back to their group when the member that had them
ends without receiving them (MQTT 5 4.8.2): unacknowledged in flight, queued behind a
full window, or queued for an offline session that expires or is cleaned."""

from __future__ import annotations

import pytest

from roost.mqtt import Puback, Publish, Pubrec, Subscribe, SubscriptionRequest
from roost.mqtt.properties import Properties
from tests.engine.memory import MemoryClient, make_engine

SHARE = "$share/grp/T"


def member(engine, level: int, client_id: str, topic_filter: str = SHARE, qos: int = 1,
           clean: bool = True, expiry: int = 0, receive_maximum: int | None = None
           ) -> MemoryClient:
    c = MemoryClient(engine, level)
    props = Properties()
    if level == 5:
        props.session_expiry_interval = expiry or None
        props.receive_maximum = receive_maximum
    c.connect(client_id, clean=clean, properties=props)
    c.send(Subscribe(1, [SubscriptionRequest(topic_filter, qos)]))
    c.take()
    return c


def publisher(engine) -> MemoryClient:
    p = MemoryClient(engine, 5)
    p.connect("pub")
    return p


def publish(p: MemoryClient, payload: bytes, qos: int = 1, topic: str = "T") -> None:
    p.send(Publish(topic, payload, qos, False, False, 1 if qos else None))
    p.take()


def publishes(c: MemoryClient) -> list[Publish]:
    got = c.take()
    assert all(isinstance(p, Publish) for p in got), got
    return got  # type: ignore[return-value]


def acked(c: MemoryClient, dup: bool | None = None) -> list[bytes]:
    """Payloads of the PUBLISHes ``c`` has, each acknowledged (QoS 1) so its window
    never fills; with ``dup`` given, each must have that DUP flag."""
    out = []
    while got := publishes(c):
        for p in got:
            assert dup is None or p.dup is dup, p
            c.send(Puback(p.packet_id))  # type: ignore[arg-type]
            out.append(p.payload)
    return out


levels = pytest.mark.parametrize("level", [4, 5])


@levels
def test_unacknowledged_message_goes_to_another_member_when_a_member_drops(level):
    engine, _ = make_engine()
    a = member(engine, level, "a")
    b = member(engine, level, "b")
    pub = publisher(engine)
    publish(pub, b"m1")
    [held] = publishes(a)  # a's turn first; it never acknowledges
    assert publishes(b) == []
    a.drop()
    [got] = publishes(b)
    # A new delivery to b, which never had it: DUP 0, b's own packet id.
    assert (got.payload, got.qos, got.dup) == (b"m1", 1, False)
    assert engine.stats.shared_redispatched == 1
    assert held.payload == b"m1"


@levels
def test_messages_queued_behind_a_full_window_go_back_in_order(level):
    # A window of one: receive maximum 1 (5.0), or the server's in-flight limit.
    engine, _ = make_engine(**({} if level == 5 else {"max_inflight": 1}))
    a = member(engine, level, "a", receive_maximum=1)
    b = member(engine, level, "b")
    pub = publisher(engine)
    got_b = []
    for i in range(1, 6):
        publish(pub, f"m{i}".encode())
        got_b += acked(b)
    # Turns alternate: a has m1 in flight and m3, m5 queued; b had m2 and m4.
    assert [p.payload for p in publishes(a)] == [b"m1"]
    assert got_b == [b"m2", b"m4"]
    assert len(engine.sessions.get("a").queue) == 2  # type: ignore[union-attr]
    a.drop()
    # Through b's window (one at a time at level 4), each as a first delivery.
    assert acked(b, dup=False) == [b"m1", b"m3", b"m5"]
    assert engine.stats.shared_redispatched == 3


def test_queued_for_an_offline_member_go_to_another_when_its_session_expires():
    engine, clock = make_engine()
    a = member(engine, 5, "a", clean=False, expiry=10)
    a.drop()
    pub = publisher(engine)
    publish(pub, b"m1")  # a is the only member: queued for it
    b = member(engine, 5, "b")
    publish(pub, b"m2")  # b is online now: it gets the next one
    assert [p.payload for p in publishes(b)] == [b"m2"]
    clock.advance(9)
    assert publishes(b) == []
    clock.advance(2)
    assert [(p.payload, p.dup) for p in publishes(b)] == [(b"m1", False)]
    assert engine.sessions.get("a") is None


@levels
def test_clean_start_ends_the_old_session_and_its_messages_go_to_another_member(level):
    engine, _ = make_engine()
    a = member(engine, level, "a", clean=False, expiry=100)
    a.drop()
    pub = publisher(engine)
    publish(pub, b"m1")
    b = member(engine, level, "b")
    again = MemoryClient(engine, level)
    assert not again.connect("a", clean=True).session_present
    assert [p.payload for p in publishes(b)] == [b"m1"]
    assert again.take() == []


@levels
def test_takeover_with_clean_start_hands_back_what_was_in_flight(level):
    engine, _ = make_engine()
    a = member(engine, level, "a", clean=False, expiry=100)
    b = member(engine, level, "b")
    pub = publisher(engine)
    publish(pub, b"m1")
    assert [p.payload for p in publishes(a)] == [b"m1"]
    MemoryClient(engine, level).connect("a", clean=True)
    assert a.closed
    assert [(p.payload, p.dup) for p in publishes(b)] == [(b"m1", False)]


@levels
def test_takeover_resuming_the_session_keeps_the_message(level):
    engine, _ = make_engine()
    a = member(engine, level, "a", clean=False, expiry=100)
    b = member(engine, level, "b")
    pub = publisher(engine)
    publish(pub, b"m1")
    publishes(a)
    again = MemoryClient(engine, level)
    assert again.connect("a", clean=False).session_present
    # The session lives on: the client gets it again (DUP 1), nobody else does.
    assert [(p.payload, p.dup) for p in again.take()] == [(b"m1", True)]  # type: ignore[attr-defined]
    assert publishes(b) == []
    assert engine.stats.shared_redispatched == 0


def test_a_message_past_pubrec_is_not_sent_again():
    engine, _ = make_engine()
    a = member(engine, 5, "a", qos=2)
    b = member(engine, 5, "b", qos=2)
    pub = publisher(engine)
    pub.send(Publish("T", b"m1", 2, False, False, 1))
    [got] = publishes(a)
    a.send(Pubrec(got.packet_id))  # type: ignore[arg-type]
    a.drop()
    assert publishes(b) == []
    assert engine.stats.shared_redispatched == 0


def test_dropped_and_counted_when_the_group_has_no_members_left():
    engine, _ = make_engine()
    a = member(engine, 5, "a", receive_maximum=1)
    pub = publisher(engine)
    publish(pub, b"m1")
    publish(pub, b"m2")
    a.drop()
    assert engine.stats.dropped_no_share_member == 2
    assert engine.stats.shared_redispatched == 0


def test_qos0_is_not_handed_back():
    engine, _ = make_engine(queue_qos0=True)
    a = member(engine, 5, "a", qos=0, clean=False, expiry=5)
    a.drop()
    pub = publisher(engine)
    publish(pub, b"m1", qos=0)
    b = member(engine, 5, "b", qos=0)
    MemoryClient(engine, 5).connect("a", clean=True)
    assert publishes(b) == []
    assert engine.stats.dropped_no_share_member == 0


def test_a_client_with_a_plain_and_a_shared_subscription_gets_two_copies():
    # 4.8.2: one copy by virtue of the plain subscription, one as the group's member;
    # only the shared one goes back to the group.
    engine, _ = make_engine()
    a = member(engine, 5, "a")
    a.send(Subscribe(2, [SubscriptionRequest("T", 1)]))
    a.take()
    b = member(engine, 5, "b")
    pub = publisher(engine)
    publish(pub, b"m1")
    assert [p.payload for p in publishes(a)] == [b"m1", b"m1"]
    a.drop()
    assert [p.payload for p in publishes(b)] == [b"m1"]
    assert engine.stats.shared_redispatched == 1
