"""Explicit flow control: the publisher's link travels with its messages down to each
receiver's connection, which holds it back when congested; messages that no input
caused hold nobody."""

from __future__ import annotations

from roost.engine.message import Message
from roost.mqtt import Publish, Subscribe, SubscriptionRequest, Will
from roost.mqtt.properties import Properties
from tests.engine.memory import MemoryClient, make_engine


class Congested(MemoryClient):
    """A receiver whose output is always above the high-water mark."""

    congested = True

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.held: list[object] = []

    def hold(self, publisher: object) -> None:
        self.held.append(publisher)


def slow_subscriber(engine, topic_filter: str = "t/#", qos: int = 0) -> Congested:
    c = Congested(engine, 5)
    c.connect(f"slow-{topic_filter}-{qos}")
    c.send(Subscribe(1, [SubscriptionRequest(topic_filter, qos)]))
    c.take()
    return c


def test_a_congested_receiver_holds_the_publishers_link():
    engine, _ = make_engine()
    slow0 = slow_subscriber(engine)
    slow1 = slow_subscriber(engine, qos=1)
    pub = MemoryClient(engine, 5)
    pub.connect("pub")
    pub.send(Publish("t/x", b"m", 1, False, False, 1))
    assert slow0.held == [pub] and slow1.held == [pub]
    assert len(slow0.take()) == len(slow1.take()) == 1


def test_a_receiver_never_holds_itself():
    engine, _ = make_engine()
    slow = slow_subscriber(engine)
    slow.send(Publish("t/self", b"m", 0, False))
    assert len(slow.take()) == 1
    assert slow.held == []


def test_messages_no_input_caused_hold_nobody():
    engine, _ = make_engine()
    slow = slow_subscriber(engine)
    # Published by the engine itself (no flow source): a will, a retained message on
    # SUBSCRIBE, any Engine.publish without a flow.
    engine.publish(Message("t/engine", b"m", 0, True))
    dies = MemoryClient(engine, 5)
    dies.connect("dies", will=Will("t/will", b"bye", 0, False, Properties()))
    dies.drop()
    late = Congested(engine, 5)
    late.connect("late")
    late.send(Subscribe(1, [SubscriptionRequest("t/engine", 0)]))
    assert [p.topic for p in slow.take()] == ["t/engine", "t/will"]  # type: ignore[attr-defined]
    assert [type(p).__name__ for p in late.take()] == ["Suback", "Publish"]
    assert slow.held == [] and late.held == []
