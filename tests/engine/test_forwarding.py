"""QoS 0 messages are forwarded as the bytes they arrived in where the receiver speaks
the publisher's format, and encoded afresh where it does not."""

from __future__ import annotations

import pytest

from roost.engine.engine import Engine
from roost.engine.records import StoredMessage
from roost.engine.store import MemoryStore
from roost.mqtt import Properties, Publish, Subscribe, SubscriptionRequest, encode
from tests.engine.memory import ManualClock, MemoryClient, make_engine


class Recording(MemoryClient):
    """Keeps the raw bytes written to it as well as the packets."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.raw: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.raw.append(data)
        super().write(data)


@pytest.mark.parametrize("pub_level", [3, 4, 5])
@pytest.mark.parametrize("retain", [False, True])
def test_every_level_receives_its_own_encoding(pub_level, retain):
    engine, _ = make_engine()
    subs = {}
    for level in (3, 4, 5):
        sub = Recording(engine, level)
        sub.connect(f"sub{level}")
        # Retain As Published (5.0) keeps the retain flag on the forwarded copy.
        sub.send(Subscribe(1, [SubscriptionRequest("f/#", 0, retain_as_published=True)],
                           Properties()))
        sub.take()
        sub.raw.clear()
        subs[level] = sub
    pub = MemoryClient(engine, pub_level)
    pub.connect("pub")
    sent = Publish("f/x", b"payload", 0, retain)
    pub.send(sent)
    for level, sub in subs.items():
        keep_retain = retain and level == 5  # 3.x subscribers see retain 0 on live messages
        expected = Publish("f/x", b"payload", 0, keep_retain)
        assert sub.raw == [encode(expected, level)], level
        assert sub.take() == [expected]


def test_properties_are_not_forwarded_as_received_bytes():
    engine, _ = make_engine()
    sub = Recording(engine, 5)
    sub.connect("sub")
    sub.send(Subscribe(1, [SubscriptionRequest("t", 0)], Properties()))
    sub.take()
    sub.raw.clear()
    pub = MemoryClient(engine, 5)
    pub.connect("pub", properties=Properties(topic_alias_maximum=5))
    # Topic alias: the bytes received name no topic, the forwarded copy must.
    pub.send(Publish("t", b"1", 0, False, False, None, Properties(topic_alias=1)))
    pub.send(Publish("", b"2", 0, False, False, None, Properties(topic_alias=1)))
    assert [p.topic for p in sub.take()] == ["t", "t"]  # type: ignore[attr-defined]


def test_client_written_sys_retained_values_are_purged_at_start() -> None:
    """A store written before clients were refused $SYS may hold a spoofed value: it is
    deleted at start; a bridge's state topic and other retained messages stay."""
    store = MemoryStore()
    for topic in ("$SYS/broker/version", "$SYS", "$SYS/broker/connection/br1/state",
                  "$aws/x", "plain/t"):
        store.retained_set(StoredMessage(topic, b"v", 0, True))
    engine = Engine(ManualClock(), store=store)
    kept = sorted(m.topic for m in store.retained_load())
    assert kept == ["$SYS/broker/connection/br1/state", "$aws/x", "plain/t"]
    assert engine.retained.count == 3
