"""The Router port's contract (roost/engine/router.py), run against every
implementation: the local router, and the cluster's router as one node on an in-memory
NATS (tests/cluster/memory_bus.py), so its messages and shared groups go through the
bus and back. Subscribers are recording fakes, so the tests say only what the port
promises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from roost.engine.message import Message
from roost.engine.router import LocalRouter, Router
from roost.engine.subscriptions import Subscription
from roost.mqtt.topics import parse_shared
from tests.cluster.memory_bus import MemoryNats, router_node

IMPLEMENTATIONS: dict[str, Callable[[], Router]] = {
    "local": LocalRouter,
    "cluster": lambda: router_node(MemoryNats()),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def router(request: pytest.FixtureRequest) -> Router:
    return IMPLEMENTATIONS[request.param]()


@dataclass(eq=False)
class Recorder:
    key: str
    online: bool = True
    plain: list[tuple[bytes, list[str]]] = field(default_factory=list)
    shared: list[tuple[bytes, str]] = field(default_factory=list)

    def deliver(self, message: Message, subscriptions: list[Subscription],
                flow: object = None) -> None:
        self.plain.append((message.payload, sorted(s.topic_filter for s in subscriptions)))

    def deliver_shared(self, message: Message, sub: Subscription, flow: object = None) -> None:
        self.shared.append((message.payload, sub.topic_filter))


def sub(topic_filter: str, qos: int = 0) -> Subscription:
    shared = parse_shared(topic_filter)
    return Subscription(topic_filter, qos, share_group=shared.group if shared else None)


def msg(topic: str, payload: bytes = b"m") -> Message:
    return Message(topic, payload, 0, False)


def test_subscribe_reports_replacement_and_unsubscribe_presence(router: Router) -> None:
    a = Recorder("a")
    assert router.subscribe(a, sub("x/+")) is False
    assert router.subscribe(a, sub("x/+", 1)) is True
    assert router.subscription_count == 1
    assert router.unsubscribe(a, sub("x/+")) is True
    assert router.unsubscribe(a, sub("x/+")) is False
    assert router.subscription_count == 0


def test_one_delivery_per_subscriber_with_every_matching_filter(router: Router) -> None:
    a, b = Recorder("a"), Recorder("b")
    for f in ("s/#", "s/+/t", "s/x/t"):
        router.subscribe(a, sub(f))
    router.subscribe(b, sub("other/#"))
    assert router.route(msg("s/x/t", b"1")) == 1
    assert a.plain == [(b"1", ["s/#", "s/+/t", "s/x/t"])]
    assert b.plain == []
    assert router.route(msg("nobody/here")) == 0


def test_leading_wildcards_never_match_dollar_topics(router: Router) -> None:
    a, b = Recorder("a"), Recorder("b")
    router.subscribe(a, sub("#"))
    router.subscribe(a, sub("+/broker/x"))
    router.subscribe(b, sub("$SYS/#"))
    assert router.route(msg("$SYS/broker/x")) == 1  # [MQTT-4.7.2-1]
    assert a.plain == [] and len(b.plain) == 1


def test_shared_group_gives_each_message_to_one_member_in_turn(router: Router) -> None:
    members = [Recorder(f"m{i}") for i in range(3)]
    for m in members:
        router.subscribe(m, sub("$share/g/j/#"))
    for n in range(6):
        assert router.route(msg("j/x", bytes([n]))) == 1
    assert sorted(len(m.shared) for m in members) == [2, 2, 2]
    assert all(m.plain == [] for m in members)


def test_plain_and_shared_subscriptions_each_get_a_copy(router: Router) -> None:
    a = Recorder("a")
    router.subscribe(a, sub("k/t"))
    router.subscribe(a, sub("$share/g/k/t"))
    assert router.route(msg("k/t")) == 2  # MQTT 5 4.8.2
    assert len(a.plain) == 1 and a.shared == [(b"m", "$share/g/k/t")]


def test_offline_members_are_passed_over_while_one_is_online(router: Router) -> None:
    off, on = Recorder("off", online=False), Recorder("on")
    router.subscribe(off, sub("$share/g/o"))
    router.subscribe(on, sub("$share/g/o"))
    for _ in range(3):
        router.route(msg("o"))
    assert len(on.shared) == 3 and off.shared == []


def test_source_never_gets_its_own_message_back(router: Router) -> None:
    backplane, local = Recorder("node-2"), Recorder("c")
    router.subscribe(backplane, sub("r/#"))
    router.subscribe(local, sub("r/#"))
    router.subscribe(backplane, sub("$share/g/r/#"))
    assert router.route(msg("r/1"), source=backplane) == 1
    assert backplane.plain == [] and backplane.shared == []
    assert len(local.plain) == 1


def test_redispatch_goes_to_another_member(router: Router) -> None:
    a, b = Recorder("a"), Recorder("b")
    router.subscribe(a, sub("$share/g/q"))
    router.subscribe(b, sub("$share/g/q"))
    router.route(msg("q", b"held"))
    holder = a if a.shared else b
    other = b if holder is a else a
    router.unsubscribe(holder, sub("$share/g/q"))  # its session ends
    assert router.redispatch("$share/g/q", msg("q", b"held")) is True
    assert other.shared == [(b"held", "$share/g/q")]
    router.unsubscribe(other, sub("$share/g/q"))
    assert router.redispatch("$share/g/q", msg("q", b"lost")) is False
