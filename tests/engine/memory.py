"""An in-memory client pair for engine tests: a manual clock and a Link that records
what the engine sends. Timers run only when the test advances the clock, so expiry and
keepalive rules are tested exactly, without sleeping."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from roost.engine.channel import Channel
from roost.engine.engine import Engine
from roost.engine.settings import EngineSettings
from roost.mqtt import Decoder, Packet, encode
from roost.mqtt.packets import Connack, Connect
from roost.mqtt.properties import Properties


class ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self._heap: list[tuple[float, int, ManualTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer()
        heapq.heappush(self._heap, (self.now + delay, next(self._seq), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._heap and self._heap[0][0] <= end:
            when, _, timer, callback = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if not timer.cancelled:
                callback()
        self.now = end


class MemoryClient:
    """One client connection to the engine, as bytes both ways."""

    def __init__(self, engine: Engine, level: int = 4, listener: str = "default") -> None:
        self.level = level
        self._listener = listener
        self.closed = False
        self._decoder = Decoder(level)
        self.received: list[Packet] = []
        self.channel = Channel(engine, self)

    # Link
    @property
    def peer(self) -> str:
        return "memory:1"

    @property
    def listener(self) -> str:
        return self._listener

    certificate_identity: str | None = None
    congested = False

    def hold(self, publisher: object) -> None:
        raise AssertionError("an in-memory client is never congested")

    def write(self, data: bytes) -> None:
        self.received.extend(self._decoder.feed(data))

    def buffered(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    # Client side
    def send(self, packet: Packet) -> None:
        self.channel.data_received(encode(packet, self.level))

    def take(self) -> list[Packet]:
        out, self.received = self.received, []
        return out

    def connect(self, client_id: str, clean: bool = True, keepalive: int = 0,
                properties: Properties | None = None, **kw: object) -> Connack:
        self.send(Connect(client_id, self.level, clean, keepalive,
                          properties=properties or Properties(), **kw))  # type: ignore[arg-type]
        packets = self.take()
        assert isinstance(packets[0], Connack), packets
        self.received = packets[1:]
        return packets[0]

    def drop(self) -> None:
        """The network connection fails (no DISCONNECT)."""
        self.closed = True
        self.channel.connection_lost()


def make_engine(**settings: object) -> tuple[Engine, ManualClock]:
    from roost.engine.hooks import AnonymousPolicy

    clock = ManualClock()
    engine = Engine(clock, EngineSettings(**settings),  # type: ignore[arg-type]
                    authenticators=[AnonymousPolicy({"default": True}, True)])
    return engine, clock
