"""Access rules applied by the engine, through the in-memory client harness: reads per
message, retained messages, wills, identity changes and ACL reloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost import auth
from roost.auth.acl import AclAuthorizer
from roost.engine.engine import Engine
from roost.engine.hooks import AnonymousPolicy
from roost.engine.settings import EngineSettings
from roost.mqtt import Publish, ReasonCode, Subscribe, SubscriptionRequest, Will
from roost.mqtt.packets import Puback, Suback
from roost.mqtt.properties import Properties
from tests.engine.memory import ManualClock, MemoryClient

ACL = """\
user alice
topic readwrite alice/#
topic read sensors/+/temp
topic deny alice/secret
user writer
topic write #
topic write $SYS/x
user watcher
topic read #
"""


@pytest.fixture
def acl_file(tmp_path: Path) -> Path:
    path = tmp_path / "acl"
    path.write_text(ACL)
    return path


def make(acl_file: Path | None) -> Engine:
    return Engine(ManualClock(), EngineSettings(),
                  authenticators=[AnonymousPolicy({"default": True}, True)],
                  authorizers=[AclAuthorizer(acl_file)] if acl_file else [])


def connect(engine: Engine, client_id: str, user: str | None, level: int = 5,
            **kw: object) -> MemoryClient:
    c = MemoryClient(engine, level)
    ack = c.connect(client_id, username=user, **kw)
    assert ack.reason_code == ReasonCode.SUCCESS, ack
    return c


def subscribe(c: MemoryClient, topic_filter: str, qos: int = 0) -> list[ReasonCode]:
    c.send(Subscribe(1, [SubscriptionRequest(topic_filter, qos)]))
    packets = c.take()
    suback = packets[0]
    assert isinstance(suback, Suback)
    c.received = packets[1:]
    return suback.reason_codes


def topics(c: MemoryClient) -> list[str]:
    return [p.topic for p in c.take() if isinstance(p, Publish)]


def test_no_acl_means_no_read_check(acl_file):
    engine = make(None)
    c = connect(engine, "free", "anyone")
    assert engine.sessions.get("free").read_check is None  # type: ignore[union-attr]
    assert subscribe(c, "#") == [ReasonCode.SUCCESS]


def test_wildcard_subscription_only_carries_readable_topics(acl_file):
    engine = make(acl_file)
    alice = connect(engine, "alice-1", "alice")
    assert subscribe(alice, "#") == [ReasonCode.SUCCESS]
    writer = connect(engine, "writer-1", "writer")
    for topic in ("sensors/a/temp", "sensors/a/humidity", "alice/x", "alice/secret",
                  "bob/x"):
        writer.send(Publish(topic, b"v", 0))
    assert topics(alice) == ["sensors/a/temp", "alice/x"]


def test_retained_messages_only_to_readers(acl_file):
    engine = make(acl_file)
    writer = connect(engine, "writer-1", "writer")
    for topic in ("alice/open", "alice/secret", "sensors/b/temp", "sensors/b/rh"):
        writer.send(Publish(topic, b"r", 0, retain=True))
    alice = connect(engine, "alice-1", "alice")
    assert subscribe(alice, "+/#") == [ReasonCode.SUCCESS]
    assert sorted(topics(alice)) == ["alice/open", "sensors/b/temp"]
    assert subscribe(alice, "alice/secret") == [ReasonCode.NOT_AUTHORIZED]
    assert topics(alice) == []
    watcher = connect(engine, "watcher-1", "watcher")
    subscribe(watcher, "#")
    assert len(topics(watcher)) == 4


@pytest.mark.parametrize("level, code", [(5, ReasonCode.NOT_AUTHORIZED),
                                         (4, ReasonCode.NOT_AUTHORIZED)])
def test_will_checked_at_connect(acl_file, level, code):
    engine = make(acl_file)
    c = MemoryClient(engine, level)
    ack = c.connect("alice-w", username="alice", will=Will("bob/will", b"x", 0, False))
    assert ack.reason_code == code
    assert c.closed
    ok = MemoryClient(engine, level)
    ack = ok.connect("alice-w2", username="alice", will=Will("alice/will", b"x", 0, False))
    assert ack.reason_code == ReasonCode.SUCCESS


def test_denied_will_never_published(acl_file):
    engine = make(acl_file)
    watcher = connect(engine, "watcher-1", "watcher")
    subscribe(watcher, "#")
    c = MemoryClient(engine, 5)
    c.connect("alice-w", username="alice", will=Will("bob/will", b"x", 0, False))
    c.drop()
    assert topics(watcher) == []


def test_publish_and_subscribe_denied(acl_file):
    engine = make(acl_file)
    alice = connect(engine, "alice-1", "alice")
    alice.send(Publish("bob/x", b"", 1, packet_id=7))
    assert alice.take() == [Puback(7, ReasonCode.NOT_AUTHORIZED)]
    alice.send(Publish("$SYS/x", b"", 1, packet_id=8))
    assert alice.take() == [Puback(8, ReasonCode.NOT_AUTHORIZED)]
    assert subscribe(alice, "bob/#") == [ReasonCode.NOT_AUTHORIZED]
    old = connect(engine, "alice-4", "alice", level=4)
    old.send(Publish("bob/x", b"", 1, packet_id=9))
    assert old.take() == [Puback(9, ReasonCode.SUCCESS)]  # 3.x: acknowledged, dropped
    assert subscribe(old, "bob/#") == [ReasonCode.UNSPECIFIED_ERROR]  # 3.x: 0x80


def test_reload_removes_subscriptions_no_longer_allowed(acl_file):
    engine = make(acl_file)
    alice = connect(engine, "alice-1", "alice")
    assert subscribe(alice, "sensors/+/temp") == [ReasonCode.SUCCESS]
    assert subscribe(alice, "alice/#") == [ReasonCode.SUCCESS]
    writer = connect(engine, "writer-1", "writer")
    acl_file.write_text(ACL.replace("topic read sensors/+/temp\n", ""))
    assert auth.reload(engine) == 1
    session = engine.sessions.get("alice-1")
    assert session is not None and list(session.subscriptions) == ["alice/#"]
    writer.send(Publish("sensors/a/temp", b"v", 0))
    writer.send(Publish("alice/a", b"v", 0))
    assert topics(alice) == ["alice/a"]
    # A reload that tightens reads stops delivery at once, even before re-checking.
    acl_file.write_text(ACL.replace("topic readwrite alice/#", "topic readwrite alice/a"))
    assert auth.reload(engine) == 0  # alice/# still overlaps alice/a
    writer.send(Publish("alice/b", b"v", 0))
    writer.send(Publish("alice/a", b"v", 0))
    assert topics(alice) == ["alice/a"]


def test_reload_with_new_authorizers_and_queued_messages(acl_file, tmp_path):
    engine = make(None)
    alice = connect(engine, "alice-q", "alice", clean=False,
                    properties=Properties(session_expiry_interval=600))
    subscribe(alice, "news/#", 1)
    alice.drop()
    writer = connect(engine, "writer-1", "writer")
    writer.send(Publish("news/a", b"1", 1, packet_id=1))
    writer.send(Publish("news/b", b"2", 1, packet_id=2))
    session = engine.sessions.get("alice-q")
    assert session is not None and len(session.queue) == 2
    # An ACL appears (as a SIGHUP with a new config would bring it).
    removed = engine.reload_acl([AclAuthorizer(acl_file)])
    assert removed == 1 and not session.subscriptions and not session.queue
    again = MemoryClient(engine, 5)
    assert again.connect("alice-q", clean=False, username="alice").session_present
    assert topics(again) == []


def test_new_owner_of_a_session_does_not_inherit_its_access(acl_file):
    engine = make(acl_file)
    alice = connect(engine, "shared-id", "alice", clean=False,
                    properties=Properties(session_expiry_interval=600))
    assert subscribe(alice, "alice/#", 1) == [ReasonCode.GRANTED_QOS_1]
    alice.drop()
    writer = connect(engine, "writer-1", "writer")
    writer.send(Publish("alice/private", b"p", 1, packet_id=1))
    # Someone else connects with the same client id and resumes the session.
    mallory = MemoryClient(engine, 5)
    ack = mallory.connect("shared-id", clean=False, username="mallory")
    assert ack.session_present
    assert topics(mallory) == []
    session = engine.sessions.get("shared-id")
    assert session is not None and not session.subscriptions
    writer.send(Publish("alice/private", b"p2", 1, packet_id=2))
    assert topics(mallory) == []
