"""The cluster router between engines on an in-memory NATS (memory_bus.py): what crosses
nodes, once, and what stays local."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from roost.cluster.router import ClusterRouter
from roost.engine.engine import Engine
from roost.engine.hooks import AnonymousPolicy
from roost.engine.message import Message, Origin
from roost.engine.retained import Retained
from roost.engine.settings import EngineSettings
from roost.engine.subscriptions import Subscription
from roost.mqtt import Properties, Publish, Subscribe, SubscriptionRequest, Unsubscribe
from roost.mqtt.packets import Packet
from tests.cluster.memory_bus import PREFIX, MemoryBus, MemoryNats, engine_node
from tests.engine.memory import ManualClock, MemoryClient


class NodeRetained:
    """A node's own retained messages, which copies from other nodes do not change (as
    ``ClusterRetained`` does; here without a retained stream)."""

    def __init__(self, inner: Retained) -> None:
        self.inner = inner

    @property
    def count(self) -> int:
        return self.inner.count

    def update(self, message: Message, persist: bool = True) -> None:
        if message.origin_kind is not Origin.REMOTE:
            self.inner.update(message, persist)

    def matching(self, topic_filter: str, now: float) -> Iterator[Message]:
        return self.inner.matching(topic_filter, now)

    def when_current(self, done: Callable[[bool], None]) -> None:
        self.inner.when_current(done)


def build(router: ClusterRouter) -> Engine:
    engine = Engine(ManualClock(), EngineSettings(), router=router,
                    authenticators=[AnonymousPolicy({"default": True}, True)])
    engine.retained = NodeRetained(engine.retained)
    return engine


def nodes(count: int) -> list[tuple[Engine, MemoryBus]]:
    network = MemoryNats()
    return [engine_node(network, build, f"n{i + 1}") for i in range(count)]


def client(engine: Engine, client_id: str, *filters: str, level: int = 5,
           **options: object) -> MemoryClient:
    c = MemoryClient(engine, level)
    c.connect(client_id)
    for i, topic_filter in enumerate(filters, 1):
        props = Properties(subscription_identifiers=[i]) if level == 5 else Properties()
        c.send(Subscribe(i, [SubscriptionRequest(topic_filter, 1, **options)],  # type: ignore[arg-type]
                         props))
    c.take()
    return c


def payloads(packets: list[Packet]) -> list[bytes]:
    return [p.payload for p in packets if isinstance(p, Publish)]


def test_overlapping_filters_on_a_node_give_one_copy_with_every_identifier() -> None:
    (e1, _), (e2, _) = nodes(2)
    sub = client(e1, "sub", "a/+", "a/#", "#")
    other = client(e1, "other", "a/b")
    pub = client(e2, "pub")
    pub.send(Publish("a/b", b"m", 0, False))
    got = sub.take()
    assert payloads(got) == [b"m"]
    assert sorted(got[0].properties.subscription_identifiers) == [1, 2, 3]  # type: ignore[attr-defined]
    assert payloads(other.take()) == [b"m"]
    # A subscriber on the publishing node: once, from its own node (no echo).
    local = client(e2, "local", "a/#", "#")
    pub.send(Publish("a/c", b"n", 0, False))
    assert payloads(local.take()) == [b"n"] and payloads(sub.take()) == [b"n"]


def test_a_message_crosses_once_and_never_comes_back() -> None:
    (e1, b1), (e2, b2), (e3, b3) = nodes(3)
    subs = [client(e, f"s{i}", "x/#") for i, e in enumerate((e1, e2, e3))]
    pub = client(e1, "pub")
    pub.send(Publish("x/1", b"once", 1, False, packet_id=1))
    assert [payloads(s.take()) for s in subs] == [[b"once"]] * 3
    assert (e2.router.stats.received, e3.router.stats.received) == (1, 1)  # type: ignore[attr-defined]
    assert e2.router.stats.forwarded == e3.router.stats.forwarded == 0  # type: ignore[attr-defined]


def test_a_shared_group_across_nodes_gets_each_message_once() -> None:
    (e1, _), (e2, _), (e3, _) = nodes(3)
    members = [client(e1, "m1", "$share/g/j/#"), client(e2, "m2", "$share/g/j/#"),
               client(e2, "m3", "$share/g/j/#")]
    publishers = [client(e, f"p{i}") for i, e in enumerate((e1, e2, e3))]
    for n in range(30):
        publishers[n % 3].send(Publish(f"j/{n}", b"%d" % n, 0, False))
    got = [p for m in members for p in payloads(m.take())]
    assert sorted(got) == sorted(b"%d" % n for n in range(30))
    assert all(payloads(m.take()) == [] for m in members)


def test_interest_is_counted_per_filter_and_group() -> None:
    (e1, b1), (e2, _) = nodes(2)
    a = client(e1, "a", "k/#", "$share/g/k/#")
    b = client(e1, "b", "k/#", "$share/g/k/#")
    assert sorted((f.topic_filter, f.queue) for f in b1.feeds) == [("k/#", ""),
                                                                 ("k/#", "g.k.~%23")]
    assert b1.feeds[0].subjects == [f"{PREFIX}.t.k", f"{PREFIX}.t.k.>"]
    a.send(Unsubscribe(9, ["k/#", "$share/g/k/#"]))
    assert len(b1.feeds) == 2
    b.send(Unsubscribe(9, ["k/#"]))
    assert [f.queue for f in b1.feeds] == ["g.k.~%23"]
    pub = client(e2, "pub")
    pub.send(Publish("k/1", b"1", 0, False))
    assert payloads(b.take()) == [b"1"] and payloads(a.take()) == []
    b.drop()  # a clean session ends: its group membership too
    assert b1.feeds == []


def test_while_the_bus_is_down_routing_is_local_shared_groups_included() -> None:
    (e1, b1), (e2, _) = nodes(2)
    member = client(e1, "member", "$share/g/d")
    plain = client(e1, "plain", "d")
    remote = client(e2, "remote", "d")
    b1.connected = False
    pub = client(e1, "pub")
    pub.send(Publish("d", b"local", 0, False))
    assert payloads(member.take()) == payloads(plain.take()) == [b"local"]
    assert payloads(remote.take()) == []
    assert e1.router.stats.forwarded == 0  # type: ignore[attr-defined]


def test_sys_values_stay_on_their_node() -> None:
    (e1, _), (e2, _) = nodes(2)
    here, there = client(e1, "here", "$SYS/#"), client(e2, "there", "$SYS/#")
    e1.publish(Message("$SYS/broker/uptime", b"5", 0, True, origin_kind=Origin.SYS))
    assert payloads(here.take()) == [b"5"] and payloads(there.take()) == []


def test_dollar_topics_cross_but_leading_wildcards_do_not_match_them() -> None:
    (e1, _), (e2, _) = nodes(2)
    everything, dollar = client(e1, "all", "#", "+/x"), client(e1, "dollar", "$app/#")
    client(e2, "pub").send(Publish("$app/x", b"d", 0, False))
    assert payloads(everything.take()) == [] and payloads(dollar.take()) == [b"d"]


def test_what_nats_cannot_carry_stays_on_its_node() -> None:
    (e1, b1), (e2, _) = nodes(2)
    long_topic = "/".join(["level" * 20] * 40)  # a subject over 3,840 bytes
    local = client(e1, "local", long_topic, "$share/g/" + long_topic)
    remote = client(e2, "remote", "#")
    assert b1.feeds == [] and e1.router.stats.filters_too_long == 2  # type: ignore[attr-defined]
    client(e1, "pub").send(Publish(long_topic, b"long", 0, False))
    assert payloads(local.take()) == [b"long", b"long"]  # plain and as the group's member
    assert payloads(remote.take()) == []
    assert e1.router.stats.topics_too_long == 1  # type: ignore[attr-defined]


def test_properties_flags_and_no_local_cross_nodes() -> None:
    (e1, _), (e2, _) = nodes(2)
    props = Properties(content_type="text/plain", response_topic="r/é",
                       correlation_data=b"\x00\r\n", payload_format_indicator=1,
                       user_properties=[("k", "v: w\r\n"), ("k", "2")],
                       message_expiry_interval=60)
    keep = client(e1, "keep", "p/#", retain_as_published=True)
    plain = client(e1, "plain", "p/#")
    # The same client id on two nodes (takeover across nodes is a later step): No Local
    # still knows the message as its own.
    same = client(e1, "pub id\n", "p/#", no_local=True)
    client(e2, "pub id\n").send(Publish("p/1", b"body", 1, True, packet_id=1,
                                        properties=props))
    (got,) = keep.take()
    assert isinstance(got, Publish) and got.retain and got.qos == 1
    assert (got.properties.content_type, got.properties.response_topic,
            got.properties.correlation_data, got.properties.payload_format_indicator,
            got.properties.user_properties, got.properties.message_expiry_interval) == (
        "text/plain", "r/é", b"\x00\r\n", 1, [("k", "v: w\r\n"), ("k", "2")], 60)
    assert [p.retain for p in plain.take()] == [False]  # type: ignore[attr-defined]
    assert same.take() == []


def test_copies_from_other_nodes_do_not_change_a_nodes_retained_messages() -> None:
    (e1, _), (e2, _) = nodes(2)
    watcher = client(e1, "watcher", "r/#")
    client(e2, "pub").send(Publish("r/1", b"kept on n2", 0, True))
    assert payloads(watcher.take()) == [b"kept on n2"]
    assert (e1.retained.count, e2.retained.count) == (0, 1)
    for engine, expected in ((e1, []), (e2, [b"kept on n2"])):
        late = MemoryClient(engine, 5)
        late.connect("late")
        late.send(Subscribe(1, [SubscriptionRequest("r/#", 0)], Properties()))
        assert payloads(late.take()) == expected


def test_a_bridge_never_gets_its_message_back_through_its_own_group() -> None:
    (e1, _), (e2, _) = nodes(2)
    bridge = Recorder("bridge")
    e1.router.subscribe(bridge, Subscription("$share/g/b", 0, share_group="g"))
    member = client(e2, "member", "$share/g/b")
    for n in range(4):
        e1.publish(Message("b", b"%d" % n, 0, False, origin_kind=Origin.BRIDGE), bridge)
    assert bridge.got == []
    # Half went to e1's queue subscription, where only the bridge is a member.
    assert len(payloads(member.take())) == 2
    assert e1.router.stats.dropped_no_member == 2  # type: ignore[attr-defined]


@dataclass(eq=False)
class Recorder:
    key: str
    online: bool = True
    got: list[bytes] = field(default_factory=list)

    def deliver(self, message: Message, subscriptions: list[Subscription],
                flow: object = None) -> None:
        self.got.append(message.payload)

    def deliver_shared(self, message: Message, sub: Subscription, flow: object = None) -> None:
        self.got.append(message.payload)
