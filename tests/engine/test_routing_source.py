"""Routing with a source: a message that came in through a subscriber (a backplane, a
bridge) never goes back to it, as a plain subscriber or as a shared-group member."""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.engine.message import Message, Origin
from roost.engine.subscriptions import Subscription
from roost.mqtt import Publish, Subscribe, SubscriptionRequest
from tests.engine.memory import MemoryClient, make_engine


@dataclass(eq=False)
class FakeRemote:
    """A remote node as the router sees it: one more subscriber."""

    key: str
    online: bool = True
    got: list[tuple[str, bytes]] = field(default_factory=list)

    def deliver(self, message: Message, subscriptions: list[Subscription],
                flow: object = None) -> None:
        self.got.append(("plain", message.payload))

    def deliver_shared(self, message: Message, sub: Subscription, flow: object = None) -> None:
        self.got.append((sub.topic_filter, message.payload))


def local(engine, client_id: str, topic_filter: str) -> MemoryClient:
    c = MemoryClient(engine, 5)
    c.connect(client_id)
    c.send(Subscribe(1, [SubscriptionRequest(topic_filter, 0)]))
    c.take()
    return c


def from_remote(payload: bytes, topic: str = "a/b") -> Message:
    return Message(topic, payload, 0, False, origin="elsewhere", origin_kind=Origin.REMOTE)


def test_a_message_from_the_backplane_is_not_forwarded_back_to_it():
    engine, _ = make_engine()
    remote = FakeRemote("node:n2")
    engine.router.subscribe(remote, Subscription("#", 0))
    sub = local(engine, "sub", "a/b")
    pub = MemoryClient(engine, 5)
    pub.connect("pub")
    pub.send(Publish("a/b", b"from-here", 0, False))
    assert remote.got == [("plain", b"from-here")]
    assert [p.payload for p in sub.take()] == [b"from-here"]  # type: ignore[attr-defined]

    assert engine.publish(from_remote(b"from-there"), source=remote) == 1
    assert remote.got == [("plain", b"from-here")]
    assert [p.payload for p in sub.take()] == [b"from-there"]  # type: ignore[attr-defined]
    # Only the source is skipped: another node still gets it.
    other = FakeRemote("node:n3")
    engine.router.subscribe(other, Subscription("a/+", 0))
    assert engine.publish(from_remote(b"again"), source=remote) == 2
    assert other.got == [("plain", b"again")]
    assert engine.publish(from_remote(b"nobody", "x/y"), source=remote) == 0


def test_a_shared_group_never_picks_the_source():
    engine, _ = make_engine()
    remote = FakeRemote("node:n2")
    engine.router.subscribe(remote, Subscription("$share/g/a/b", 0, share_group="g"))
    member = local(engine, "member", "$share/g/a/b")
    for i in range(4):
        assert engine.publish(from_remote(b"%d" % i), source=remote) == 1
    assert remote.got == []
    assert [p.payload for p in member.take()] == [b"0", b"1", b"2", b"3"]  # type: ignore[attr-defined]
    # Without a source the turn alternates between both members.
    for i in range(4):
        engine.publish(Message("a/b", b"%d" % i, 0, False))
    assert len(remote.got) == 2 and len(member.take()) == 2
    member.drop()
    # The source alone in the group: the message is not delivered back.
    assert engine.publish(from_remote(b"lonely"), source=remote) == 0
    assert len(remote.got) == 2


def test_messages_carry_their_origin_kind():
    engine, _ = make_engine()
    seen: list[Message] = []

    class Spy(FakeRemote):
        def deliver(self, message: Message, subscriptions: list[Subscription],
                flow: object = None) -> None:
            seen.append(message)

    engine.router.subscribe(Spy("spy"), Subscription("#", 0))
    pub = MemoryClient(engine, 4)
    pub.connect("pub")
    pub.send(Publish("t", b"x", 0, False))
    assert [(m.origin, m.origin_kind) for m in seen] == [("pub", Origin.CLIENT)]
