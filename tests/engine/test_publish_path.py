"""Engine.publish is the one way into routing ($SYS and wills included), and retained
messages sit behind the ``Retained`` protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from roost.admin.node import EngineFigures
from roost.admin.sys_topics import SysTopics
from roost.engine.engine import Engine
from roost.engine.hooks import AnonymousPolicy
from roost.engine.link import FlowSource
from roost.engine.message import Message, Origin
from roost.engine.records import StoredMessage
from roost.engine.settings import EngineSettings
from roost.engine.store import MemoryStore
from roost.engine.subscriptions import Subscriber
from roost.mqtt import Publish, Subscribe, SubscriptionRequest, Will
from roost.mqtt.properties import Properties
from tests.engine.memory import ManualClock, MemoryClient, make_engine


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.retained_writes: list[str] = []

    def retained_set(self, message: StoredMessage) -> None:
        self.retained_writes.append(message.topic)
        super().retained_set(message)



class EngineNode:
    """The two things SysTopics asks of its node, answered from an engine alone (the
    running node, roost.app.Broker, answers them the same way)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def figures(self) -> EngineFigures:
        e = self.engine
        return EngineFigures(e.stats, e.sessions.census(), e.router.subscription_count,
                             e.retained.count, e.store)

    def publish_transient(self, message: Message) -> None:
        self.engine.publish(message)


def engine_with(**kw: object) -> Engine:
    return Engine(ManualClock(), EngineSettings(), authenticators=[  # type: ignore[arg-type]
        AnonymousPolicy({"default": True}, True)], **kw)  # type: ignore[arg-type]


def subscriber(engine: Engine, topic_filter: str) -> MemoryClient:
    c = MemoryClient(engine, 5)
    c.connect(f"sub-{topic_filter}")
    c.send(Subscribe(1, [SubscriptionRequest(topic_filter, 0)]))
    c.take()
    return c


def test_sys_values_go_through_publish_and_stay_out_of_the_store():
    store = CountingStore()
    engine = engine_with(store=store)
    calls: list[tuple[str, Origin]] = []
    publish = engine.publish

    def spy(message: Message, source: Subscriber | None = None,
            flow: FlowSource | None = None) -> int:
        calls.append((message.topic, message.origin_kind))
        return publish(message, source, flow)

    engine.publish = spy  # type: ignore[method-assign]
    watcher = subscriber(engine, "$SYS/broker/uptime")
    changed = SysTopics(EngineNode(engine), 10.0, now=lambda: 100.0).update()
    assert len(calls) == changed > 0
    assert {kind for _, kind in calls} == {Origin.SYS}
    assert [p.topic for p in watcher.take()] == ["$SYS/broker/uptime"]  # type: ignore[attr-defined]
    assert engine.retained.count == changed  # retained in memory...
    assert store.retained_writes == []  # ...never stored

    pub = MemoryClient(engine, 5)
    pub.connect("pub")
    pub.send(Publish("r/t", b"v", 0, True))
    assert store.retained_writes == ["r/t"]


def test_wills_go_through_publish():
    engine, _ = make_engine()
    calls: list[Message] = []
    publish = engine.publish
    engine.sessions._publish = lambda m: calls.append(m) or publish(m)  # type: ignore[func-returns-value]
    watcher = subscriber(engine, "w")
    c = MemoryClient(engine, 5)
    c.connect("dies", will=Will("w", b"bye", 0, False, Properties()))
    c.drop()
    assert [(m.topic, m.origin, m.origin_kind) for m in calls] == [("w", "dies", Origin.CLIENT)]
    assert [p.payload for p in watcher.take()] == [b"bye"]  # type: ignore[attr-defined]


class FeedRetained:
    """A Retained fed from elsewhere (as a cluster's would be from other nodes)."""

    def __init__(self) -> None:
        self.messages: dict[str, Message] = {}
        self.updates: list[tuple[str, bool]] = []

    @property
    def count(self) -> int:
        return len(self.messages)

    def update(self, message: Message, persist: bool = True) -> None:
        self.updates.append((message.topic, persist))
        self.messages[message.topic] = message

    def matching(self, topic_filter: str, now: float) -> Iterator[Message]:
        return iter([m for t, m in self.messages.items() if t.startswith(topic_filter[:-1])])

    # Answered at once unless the test makes the index lag, as a cluster's can.
    lagging = False
    waiting: list[Callable[[bool], None]] = []

    def when_current(self, done: Callable[[bool], None]) -> None:
        if self.lagging:
            self.waiting.append(done)
        else:
            done(True)


def test_the_engine_uses_the_retained_implementation_it_is_given():
    retained = FeedRetained()
    engine = engine_with(retained=retained)
    retained.update(Message("f/remote", b"from-another-node", 0, True,
                            origin_kind=Origin.REMOTE))
    pub = MemoryClient(engine, 5)
    pub.connect("pub")
    pub.send(Publish("f/local", b"here", 0, True))
    assert retained.updates[-1] == ("f/local", True)
    sub = MemoryClient(engine, 5)
    sub.connect("sub")
    sub.send(Subscribe(1, [SubscriptionRequest("f/#", 0)]))
    assert sorted(p.payload for p in sub.take()[1:]) == [  # type: ignore[attr-defined]
        b"from-another-node", b"here"]


def test_retained_sent_once_the_index_is_current():
    """Read-your-writes across nodes: SUBACK at once, the retained messages when the
    index has caught up, including an update that arrived meanwhile."""
    retained = FeedRetained()
    retained.lagging = True
    retained.waiting = []
    engine = engine_with(retained=retained)
    sub = MemoryClient(engine, 5)
    sub.connect("lag")
    sub.send(Subscribe(1, [SubscriptionRequest("g/#", 0)]))
    assert [type(p).__name__ for p in sub.take()] == ["Suback"]
    retained.update(Message("g/new", b"acknowledged on another node", 0, True,
                            origin_kind=Origin.REMOTE))
    retained.waiting.pop()(True)
    assert [p.payload for p in sub.take()] == [  # type: ignore[attr-defined]
        b"acknowledged on another node"]
