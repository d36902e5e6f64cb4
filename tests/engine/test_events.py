"""The hook registry (roost/engine/hooks.py) and the engine events it carries
(roost/engine/events.py), driven through the in-memory client."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.engine.events import (
    ClientConnected,
    ClientDisconnected,
    ClientRefused,
    DropReason,
    MessageDelivered,
    MessageDropped,
    SessionEnded,
    SessionOpened,
)
from roost.engine.hooks import (
    AccessEvent,
    Action,
    ConnectEvent,
    Decision,
    HookRegistry,
    run_chain_deferred,
)
from roost.mqtt import Properties, Publish, Subscribe, SubscriptionRequest
from roost.mqtt.packets import Connect
from roost.mqtt.reason_codes import ReasonCode
from tests.engine.memory import MemoryClient, make_engine


def record(engine, *types):  # type: ignore[no-untyped-def]
    seen: list[object] = []
    for t in types:
        engine.hooks.listen(t, seen.append)
    return seen


def test_listeners_run_in_order_and_a_failing_one_does_not_stop_the_rest(caplog):
    hooks = HookRegistry()
    calls: list[str] = []
    hooks.listen(ClientDisconnected, lambda e: calls.append("first"))

    def broken(e: ClientDisconnected) -> None:
        raise RuntimeError("listener bug")

    hooks.listen(ClientDisconnected, broken)
    remove = hooks.listen(ClientDisconnected, lambda e: calls.append("third"))
    event = ClientDisconnected("c", "p", "l", 5, "gone")
    hooks.emit(event)
    assert calls == ["first", "third"]
    assert "listener bug" in caplog.text
    remove()
    hooks.emit(event)
    assert calls == ["first", "third", "first"]


def test_message_events_flag_follows_listeners():
    hooks = HookRegistry()
    assert not hooks.message_events
    hooks.listen(ClientConnected, print)
    assert not hooks.message_events
    remove = hooks.listen(MessageDropped, print)
    assert hooks.message_events
    remove()
    assert not hooks.message_events


def test_client_lifecycle_events():
    engine, _ = make_engine()
    seen = record(engine, ClientConnected, ClientRefused, ClientDisconnected)
    c = MemoryClient(engine, 5)
    c.connect("ev-1")
    c.drop()
    bad = MemoryClient(engine, 4)
    bad.send(Connect("", 4, False, 0))  # empty client id without clean session
    assert seen == [
        ClientConnected("ev-1", None, "memory:1", "default", 5, True, False),
        ClientDisconnected("ev-1", "memory:1", "default", 5, "connection lost"),
        ClientRefused("", "memory:1", "default", 4, ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
                      "empty client id without clean session"),
    ]


def test_message_delivered_and_dropped_events():
    engine, clock = make_engine()
    seen = record(engine, MessageDelivered, MessageDropped)
    sub = MemoryClient(engine, 5)
    sub.connect("ev-sub", properties=Properties(maximum_packet_size=100))
    sub.send(Subscribe(1, [SubscriptionRequest("ev/#", 0)]))
    pub = MemoryClient(engine, 5)
    pub.connect("ev-pub")
    pub.send(Publish("ev/a", b"fits", 0, False, False, None, Properties()))
    pub.send(Publish("ev/b", b"x" * 200, 0, False, False, None, Properties()))
    pub.send(Publish("ev/c", b"\xff", 1, False, False, 1,
                     Properties(payload_format_indicator=1)))
    delivered = [e for e in seen if isinstance(e, MessageDelivered)]
    assert [(e.client_id, e.message.topic, e.qos) for e in delivered] == [
        ("ev-sub", "ev/a", 0)]
    assert [e for e in seen if isinstance(e, MessageDropped)] == [
        MessageDropped("ev-sub", "ev/b", DropReason.TOO_LARGE),
        MessageDropped(None, "ev/c", DropReason.PAYLOAD_FORMAT_INVALID),
    ]


EVENT = ConnectEvent("c", None, None, "p", "l", 5)


class Later:
    def __init__(self) -> None:
        self.pending: list[Callable[[Decision], None]] = []

    def authenticate_deferred(self, event: ConnectEvent,
                              done: Callable[[Decision], None]) -> None:
        self.pending.append(done)


class Now:
    def __init__(self, answer: Decision) -> None:
        self.answer = answer

    def authenticate(self, event: ConnectEvent) -> Decision:
        return self.answer


@pytest.mark.parametrize(("first", "then", "expected"), [
    (Decision.ABSTAIN, Decision.ALLOW, Decision.ALLOW),
    (Decision.ABSTAIN, Decision.ABSTAIN, Decision.DENY),  # the chain's default
    (Decision.DENY, Decision.ALLOW, Decision.DENY),  # first answer wins
])
def test_deferred_chain(first, then, expected):
    later = Later()
    got: list[Decision] = []
    run_chain_deferred([later, Now(then)], EVENT, got.append)
    assert got == []
    later.pending.pop()(first)
    assert got == [expected]


def test_authorize_defaults_to_allow():
    hooks = HookRegistry()
    event = AccessEvent("c", None, Action.PUBLISH, "t")
    assert hooks.authorize(event) is Decision.ALLOW
    hooks.authorizers.append(type("Deny", (), {"authorize": lambda s, e: Decision.DENY})())
    assert hooks.authorize(event) is Decision.DENY


def test_session_events_and_queue_full_drop():
    engine, _ = make_engine(max_queued_messages=1)
    seen = record(engine, SessionOpened, SessionEnded, MessageDropped)
    sub = MemoryClient(engine, 5)
    sub.connect("ev-q", properties=Properties(session_expiry_interval=60))
    sub.send(Subscribe(1, [SubscriptionRequest("q/#", 1)]))
    sub.drop()  # offline: messages queue, one at most
    pub = MemoryClient(engine, 5)
    pub.connect("ev-qpub")
    for pid in (1, 2):
        pub.send(Publish("q/t", b"m", 1, False, False, pid, Properties()))
    again = MemoryClient(engine, 5)
    again.connect("ev-q", clean=True)  # clean start: the old session ends
    assert seen == [
        SessionOpened("ev-q", False, 60),
        SessionOpened("ev-qpub", False, 0),
        MessageDropped("ev-q", "q/t", DropReason.QUEUE_FULL),
        SessionEnded("ev-q"),
        SessionOpened("ev-q", False, 0),
    ]
