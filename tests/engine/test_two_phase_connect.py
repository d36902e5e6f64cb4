"""Two-phase CONNECT (roost/engine/directory.py): the CONNACK is sent when the session
directory (or a deferred authenticator) answers, what the client pipelined meanwhile is
handled after it, in order, and discarded if the CONNECT is refused. The directory here
defers its answer the way a cluster's does while it fences the previous owner."""

from __future__ import annotations

from collections.abc import Callable

from roost.engine.channel import HELD_INPUT_LIMIT
from roost.engine.directory import LocalSessionDirectory, Opened
from roost.engine.engine import Engine
from roost.engine.hooks import AnonymousPolicy, ConnectEvent, Decision
from roost.engine.session import Outlet
from roost.engine.settings import EngineSettings
from roost.engine.store import MemoryStore
from roost.mqtt import Properties, Publish, Subscribe, SubscriptionRequest, encode
from roost.mqtt.packets import Connack, Connect, Disconnect, Puback, Suback, Will
from roost.mqtt.reason_codes import ReasonCode
from tests.engine.memory import ManualClock, MemoryClient, make_engine


class DeferredDirectory(LocalSessionDirectory):
    """Answers ``open`` only when the test says so."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.sessions)
        self.waiting: list[Callable[[], None]] = []
        self.refusal: ReasonCode | None = None
        self.closed_calls: list[tuple[str, Will | None]] = []

    def open(self, client_id: str, clean_start: bool, expiry_interval: int | None,
             outlet: Outlet, done: Callable[[Opened], None]) -> None:
        def answer() -> None:
            if self.refusal is not None:
                done(Opened(None, refusal=self.refusal))
            else:
                LocalSessionDirectory.open(self, client_id, clean_start, expiry_interval,
                                           outlet, done)
        self.waiting.append(answer)

    def closed(self, session, will):  # type: ignore[no-untyped-def]
        self.closed_calls.append((session.client_id, will))
        super().closed(session, will)

    def answer_all(self) -> None:
        waiting, self.waiting = self.waiting, []
        for answer in waiting:
            answer()


def deferred_engine() -> tuple[Engine, DeferredDirectory]:
    engine, _ = make_engine()
    directory = DeferredDirectory(engine)
    engine.directory = directory
    return engine, directory


PIPELINED = [
    Connect("c1", 5, True, 0),
    Subscribe(1, [SubscriptionRequest("t/#", 1)]),
    Publish("t/a", b"one", 1, False, False, 2, Properties()),
    Publish("t/b", b"two", 0, False, False, None, Properties()),
]


def test_pipelined_packets_wait_for_connack_then_run_in_order():
    engine, directory = deferred_engine()
    c = MemoryClient(engine, 5)
    c.channel.data_received(b"".join(encode(p, 5) for p in PIPELINED))
    assert c.take() == []  # nothing answered before the directory does
    directory.answer_all()
    got = c.take()
    assert [type(p) for p in got] == [Connack, Suback, Publish, Puback, Publish]
    assert got[0].reason_code == ReasonCode.SUCCESS  # type: ignore[attr-defined]
    assert [p.payload for p in got if isinstance(p, Publish)] == [b"one", b"two"]


def test_bytes_arriving_while_connecting_are_held_too():
    engine, directory = deferred_engine()
    c = MemoryClient(engine, 5)
    data = b"".join(encode(p, 5) for p in PIPELINED)
    c.channel.data_received(data[:20])
    c.channel.data_received(data[20:])
    assert c.take() == []
    directory.answer_all()
    assert [type(p) for p in c.take()] == [Connack, Suback, Publish, Puback, Publish]


def test_refused_connect_discards_what_was_pipelined():
    engine, directory = deferred_engine()
    directory.refusal = ReasonCode.SERVER_UNAVAILABLE
    c = MemoryClient(engine, 5)
    c.channel.data_received(b"".join(encode(p, 5) for p in PIPELINED))
    directory.answer_all()
    assert c.take() == [Connack(ReasonCode.SERVER_UNAVAILABLE)]
    assert c.closed
    assert engine.sessions.get("c1") is None


def test_violation_after_connect_answered_after_connack():
    engine, directory = deferred_engine()
    c = MemoryClient(engine, 5)
    # CONNECT, then a PUBLISH at QoS 3 (malformed).
    c.channel.data_received(encode(Connect("c2", 5, True, 0), 5) + b"\x36\x03\x00\x01a")
    assert c.take() == []
    directory.answer_all()
    got = c.take()
    assert isinstance(got[0], Connack) and got[1] == Disconnect(ReasonCode.MALFORMED_PACKET)
    assert c.closed


def test_client_gone_before_connack_hands_the_session_back_without_will():
    engine, directory = deferred_engine()
    c = MemoryClient(engine, 5)
    c.send(Connect("c3", 5, True, 0, will=Will("w/c3", b"bye", 0, False),
                   properties=Properties(session_expiry_interval=60)))
    c.drop()
    directory.answer_all()
    assert directory.closed_calls == [("c3", None)]
    session = engine.sessions.get("c3")
    assert session is not None and not session.online


def test_too_much_input_before_connack_closes():
    engine, directory = deferred_engine()
    c = MemoryClient(engine, 5)
    c.channel.data_received(encode(Connect("c4", 5, True, 0), 5))
    chunk = encode(Publish("t", b"x" * 60_000, 0, False, False, None, Properties()), 5)
    for _ in range(HELD_INPUT_LIMIT // len(chunk) + 1):
        c.channel.data_received(chunk)
    assert c.closed
    assert engine.stats.limit_breaches["held_input"] == 1


def test_connect_timeout_covers_the_directory():
    engine, clock = make_engine(connect_timeout=2.0)
    directory = DeferredDirectory(engine)
    engine.directory = directory
    c = MemoryClient(engine, 5)
    c.send(Connect("c5", 5, True, 0))
    clock.advance(2.5)
    assert c.closed and c.take() == []
    directory.answer_all()  # a late answer finds the connection gone
    assert directory.closed_calls == [("c5", None)]


class LaterAuthenticator:
    """Answers from a callback, as a registry lookup or off-loop hashing would."""

    def __init__(self) -> None:
        self.pending: list[Callable[[Decision], None]] = []

    def authenticate_deferred(self, event: ConnectEvent,
                              done: Callable[[Decision], None]) -> None:
        self.pending.append(done)

    def authenticate(self, event: ConnectEvent) -> Decision:  # pragma: no cover
        raise AssertionError("the deferred form is preferred")


def test_deferred_authentication_holds_input_until_decided():
    engine, _ = make_engine()
    auth = LaterAuthenticator()
    engine.hooks.authenticators = [auth, *engine.hooks.authenticators]
    c = MemoryClient(engine, 5)
    c.channel.data_received(b"".join(encode(p, 5) for p in PIPELINED))
    assert c.take() == []
    auth.pending.pop()(Decision.ABSTAIN)  # falls through to the anonymous policy
    assert [type(p) for p in c.take()] == [Connack, Suback, Publish, Puback, Publish]
    d = MemoryClient(engine, 5)
    d.channel.data_received(b"".join(encode(p, 5) for p in PIPELINED))
    auth.pending.pop()(Decision.DENY)
    # No credentials at all: "not authorized"; the pipelined packets are discarded.
    assert d.take() == [Connack(ReasonCode.NOT_AUTHORIZED)]
    assert d.closed


class FailingStore(MemoryStore):
    """Every commit fails, as with a full disk."""

    def commit(self, callback: Callable[[bool], None]) -> None:
        callback(False)


def test_persistent_session_not_stored_is_refused_at_connect():
    """The CONNACK of a session that outlives its connection follows the commit of its
    record; when that fails the client is told the server is unavailable, and a
    session without expiry connects as usual."""
    clock = ManualClock()
    engine = Engine(clock, EngineSettings(), store=FailingStore(),
                    authenticators=[AnonymousPolicy({"default": True}, True)])
    c = MemoryClient(engine, 5)
    c.send(Connect("c6", 5, True, 0, properties=Properties(session_expiry_interval=60)))
    assert c.take() == [Connack(ReasonCode.SERVER_UNAVAILABLE)]
    assert c.closed
    d = MemoryClient(engine, 5)
    assert d.connect("c7").reason_code == ReasonCode.SUCCESS
