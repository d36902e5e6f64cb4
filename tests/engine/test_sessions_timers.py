"""Session, will and keepalive timing rules, driven by a manual clock."""

from roost.mqtt import Disconnect, Publish, ReasonCode, Subscribe, SubscriptionRequest, Will
from roost.mqtt.properties import Properties
from tests.engine.memory import MemoryClient, make_engine


def subscribe(client: MemoryClient, topic_filter: str, qos: int = 0) -> None:
    client.send(Subscribe(1, [SubscriptionRequest(topic_filter, qos)]))
    client.take()


def test_keepalive_enforced_at_one_and_a_half_times():
    engine, clock = make_engine()
    c = MemoryClient(engine, 5)
    c.connect("ka", keepalive=10)
    clock.advance(14.9)
    assert not c.closed
    clock.advance(0.2)
    assert c.closed
    assert c.take() == [Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)]


def test_traffic_resets_keepalive():
    engine, clock = make_engine()
    c = MemoryClient(engine, 4)
    c.connect("ka2", keepalive=10)
    for _ in range(5):
        clock.advance(10)
        c.channel.data_received(b"\xc0\x00")  # PINGREQ
    assert not c.closed


def test_connect_timeout():
    engine, clock = make_engine(connect_timeout=3.0)
    c = MemoryClient(engine, 4)
    clock.advance(2.9)
    assert not c.closed
    clock.advance(0.2)
    assert c.closed


def test_session_expiry_counts_from_disconnect():
    engine, clock = make_engine()
    c = MemoryClient(engine, 5)
    c.connect("exp", clean=False, properties=Properties(session_expiry_interval=60))
    subscribe(c, "e/x", 1)
    c.drop()
    clock.advance(59)
    assert engine.sessions.get("exp") is not None
    clock.advance(2)
    assert engine.sessions.get("exp") is None
    assert engine.router.subscription_count == 0


def test_will_delay_then_published_and_cancelled_by_reconnect():
    engine, clock = make_engine()
    watcher = MemoryClient(engine, 4)
    watcher.connect("watcher")
    subscribe(watcher, "wills/#")
    will = Will("wills/a", b"gone", 0, False, Properties(will_delay_interval=5))

    a = MemoryClient(engine, 5)
    a.connect("a", clean=False, will=will, properties=Properties(session_expiry_interval=100))
    a.drop()
    clock.advance(4)
    assert watcher.take() == []
    clock.advance(1.1)
    assert [p.payload for p in watcher.take()] == [b"gone"]

    b = MemoryClient(engine, 5)
    b.connect("b", clean=False, will=Will("wills/b", b"gone-b", 0, False,
                                          Properties(will_delay_interval=5)),
              properties=Properties(session_expiry_interval=100))
    b.drop()
    clock.advance(2)
    again = MemoryClient(engine, 5)
    assert again.connect("b", clean=False).session_present
    clock.advance(10)
    assert watcher.take() == []


def test_will_sent_when_session_ends_before_delay():
    engine, clock = make_engine()
    watcher = MemoryClient(engine, 4)
    watcher.connect("watcher2")
    subscribe(watcher, "wills2/#")
    a = MemoryClient(engine, 5)
    a.connect("a2", clean=False,
              will=Will("wills2/a", b"x", 0, False, Properties(will_delay_interval=100)),
              properties=Properties(session_expiry_interval=3))
    a.drop()
    clock.advance(3.1)
    assert [p.topic for p in watcher.take()] == ["wills2/a"]


def test_takeover_keeps_session_and_closes_old_connection():
    engine, clock = make_engine()
    old = MemoryClient(engine, 5)
    old.connect("dup", clean=False, properties=Properties(session_expiry_interval=30))
    subscribe(old, "t/1", 1)
    new = MemoryClient(engine, 5)
    assert new.connect("dup", clean=False).session_present
    assert old.closed
    assert old.take() == [Disconnect(ReasonCode.SESSION_TAKEN_OVER)]
    pub = MemoryClient(engine, 4)
    pub.connect("pub")
    pub.send(Publish("t/1", b"m", 1, packet_id=3))
    delivered = [p for p in new.take() if isinstance(p, Publish)]
    assert [(p.topic, p.qos) for p in delivered] == [("t/1", 1)]


def test_message_expiry_drops_queued_message():
    engine, clock = make_engine()
    s = MemoryClient(engine, 5)
    s.connect("mx", clean=False, properties=Properties(session_expiry_interval=100))
    subscribe(s, "mx/t", 1)
    s.drop()
    pub = MemoryClient(engine, 5)
    pub.connect("mxpub")
    pub.send(Publish("mx/t", b"short", 1, packet_id=1,
                     properties=Properties(message_expiry_interval=2)))
    pub.send(Publish("mx/t", b"long", 1, packet_id=2,
                     properties=Properties(message_expiry_interval=30)))
    clock.advance(5)
    s2 = MemoryClient(engine, 5)
    s2.connect("mx", clean=False)
    got = [p for p in s2.received if isinstance(p, Publish)]
    assert [p.payload for p in got] == [b"long"]
    assert got[0].properties.message_expiry_interval == 25
    assert engine.stats.dropped_expired == 1


def test_offline_queue_is_bounded_and_counted():
    engine, clock = make_engine(max_queued_messages=3)
    s = MemoryClient(engine, 4)
    s.connect("q", clean=False)
    subscribe(s, "q/t", 1)
    s.drop()
    pub = MemoryClient(engine, 4)
    pub.connect("qpub")
    for i in range(5):
        pub.send(Publish("q/t", str(i).encode(), 1, packet_id=i + 1))
    assert engine.stats.dropped_queue_full == 2
    s2 = MemoryClient(engine, 4)
    s2.connect("q", clean=False)
    assert [p.payload for p in s2.received if isinstance(p, Publish)] == [b"0", b"1", b"2"]


def test_offline_queue_is_bounded_by_bytes():
    engine, clock = make_engine(max_queued_bytes=2500)
    s = MemoryClient(engine, 4)
    s.connect("qb", clean=False)
    subscribe(s, "qb/t", 1)
    s.drop()
    pub = MemoryClient(engine, 4)
    pub.connect("qbpub")
    for i in range(5):
        pub.send(Publish("qb/t", bytes([65 + i]) * 1000, 1, packet_id=i + 1))
    assert engine.stats.dropped_queue_full == 3
    s2 = MemoryClient(engine, 4)
    s2.connect("qb", clean=False)
    got = [p.payload[:1] for p in s2.received if isinstance(p, Publish)]
    assert got == [b"A", b"B"]
    assert engine.sessions.get("qb").queued_bytes == 0


def test_per_receiver_properties_never_leak_into_the_shared_empty_set():
    from roost.mqtt.properties import NO_PROPERTIES

    engine, clock = make_engine()
    a = MemoryClient(engine, 5)
    a.connect("np-a", properties=Properties(topic_alias_maximum=5))
    a.send(Subscribe(1, [SubscriptionRequest("np/t", 1)],
                     Properties(subscription_identifiers=[7])))
    a.take()
    pub = MemoryClient(engine, 5)
    pub.connect("np-pub")
    pub.send(Publish("np/t", b"x", 1, packet_id=1,
                     properties=Properties(message_expiry_interval=30)))
    got = [p for p in a.take() if isinstance(p, Publish)]
    assert got[0].properties.subscription_identifiers == [7]
    assert got[0].properties.topic_alias == 1
    assert Properties() == NO_PROPERTIES
