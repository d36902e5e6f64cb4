"""Back-pressure against a real broker: a subscriber that cannot keep up holds its
publishers back (their sockets are not read) for as long as it makes progress; one that
reads nothing for HOLD_LIMIT is let go, and its QoS 0 messages are then dropped beyond
``max_output_buffer``. A subscriber that reads promptly is never taken for slow, even
when one burst gives it more than HIGH_WATER bytes in a single turn of the loop.

The bulk traffic is raw bytes: one QoS 0 PUBLISH per message, all of one size, sent in
one ``sendall``; a QoS 0 PUBLISH is forwarded to a 3.1.1 subscriber exactly as received,
so the subscriber's stream is checked byte for byte, in order."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from roost.mqtt import (
    Connack,
    Connect,
    Decoder,
    Pingreq,
    Pingresp,
    Publish,
    Suback,
    Subscribe,
    SubscriptionRequest,
    encode,
)
from roost.transport.tcp import HIGH_WATER, HOLD_LIMIT
from tests.admin.helpers import scrape, value
from tests.broker import BrokerProcess, RawClient

MEMORY = '[store]\ntype = "memory"\n'
SLOW = "reads too slowly"
PAYLOAD = 64
PINGREQ = encode(Pingreq(), 4)

_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"bp-{prefix}-{next(_ids)}"


@pytest.fixture
def closing() -> Iterator[list[socket.socket | RawClient]]:
    """Sockets and clients to close at the end of the test, whatever happens."""
    made: list[socket.socket | RawClient] = []
    yield made
    for s in made:
        s.close()


def burst(topic: str, size: int) -> list[bytes]:
    """About ``size`` bytes of QoS 0 PUBLISH packets, all the same length, each with
    its sequence number at the start of its payload."""
    one = len(encode(Publish(topic, b"x" * PAYLOAD), 4))
    return [encode(Publish(topic, f"{i:08d}".encode().ljust(PAYLOAD, b".")), 4)
            for i in range(size // one)]


def subscriber(port: int, client_id: str, topic: str, rcvbuf: int | None = None,
               closing: list[socket.socket | RawClient] | None = None) -> socket.socket:
    """A plain socket connected and subscribed (QoS 0) to ``topic`` at MQTT 3.1.1; with
    ``rcvbuf``, its kernel receive buffer is made that small before connecting."""
    s = socket.socket()
    if closing is not None:
        closing.append(s)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(encode(Connect(client_id, 4), 4)
              + encode(Subscribe(1, [SubscriptionRequest(topic, 0)]), 4))
    decoder = Decoder(4)
    got: list[object] = []
    while len(got) < 2:
        data = s.recv(4096)
        assert data, "the broker closed the subscriber"
        got += decoder.feed(data)
    assert isinstance(got[0], Connack) and isinstance(got[1], Suback), got
    assert len(got) == 2 and not decoder.buffered, got
    return s


def publisher(port: int, client_id: str,
              closing: list[socket.socket | RawClient]) -> RawClient:
    c = RawClient(port, 4, timeout=30)
    closing.append(c)
    c.connect(client_id)
    return c


class Reader(threading.Thread):
    """Reads a subscriber's socket until exactly ``expected`` has arrived, in order.

    For the first ``slow_for`` seconds it takes ``slow_chunk`` bytes every ``pace``
    seconds (a slow but steady reader); after that, whatever is there."""

    def __init__(self, sock: socket.socket, expected: list[bytes], slow_chunk: int = 0,
                 pace: float = 0.0, slow_for: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.expected = expected
        self.size = len(expected[0])
        self.slow_chunk = slow_chunk
        self.pace = pace
        self.slow_for = slow_for
        self.received = 0
        self.last_at = 0.0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        buf = bytearray()
        size, expected = self.size, self.expected
        slow_until = time.monotonic() + self.slow_for
        self.sock.settimeout(0.2)
        try:
            while self.received < len(expected) and not self.stop.is_set():
                slow = time.monotonic() < slow_until
                try:
                    data = self.sock.recv(self.slow_chunk if slow else 1 << 16)
                except TimeoutError:
                    continue
                assert data, f"the broker closed the subscriber after {self.received}"
                buf += data
                whole = len(buf) // size
                for k in range(whole):
                    i = self.received + k
                    got = bytes(buf[k * size:(k + 1) * size])
                    assert i < len(expected), f"more than the {len(expected)} messages sent"
                    assert got == expected[i], (
                        f"message {i}: got {got[-PAYLOAD:][:8]!r} (a message lost?)")
                del buf[:whole * size]
                self.received += whole
                if whole:
                    self.last_at = time.monotonic()
                if slow:
                    time.sleep(self.pace)
            assert not buf, f"{len(buf)} bytes after the last whole message"
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self, timeout: float) -> None:
        """Wait for every message; fail with what went wrong otherwise."""
        self.join(timeout)
        self.stop.set()
        self.join(1)
        assert self.error is None, f"subscriber: {self.error!r}"
        assert self.received == len(self.expected), (
            f"{self.received} of {len(self.expected)} messages arrived")


def send_and_ping(pub: RawClient, messages: list[bytes], timeout: float = 30) -> None:
    """Send ``messages`` in one ``sendall`` with a PINGREQ after them, and wait for its
    PINGRESP: the broker has then read (and routed) all of them."""
    pub.send_raw(b"".join(messages) + PINGREQ)
    pub.expect(Pingresp, timeout)


def slow_lines(broker: BrokerProcess) -> list[str]:
    return [line for line in broker.log().splitlines() if SLOW in line]


def test_burst_to_a_prompt_reader_is_not_taken_for_slow(closing):
    """One burst of ~3 MB gives the subscriber more than HIGH_WATER bytes in one turn,
    so the publisher is held; but the socket takes it all at once, and nothing will
    ever wait on it: the hold must end at the flush, not run for 2 × HOLD_LIMIT into a
    "reads too slowly" (with the publisher stalled meanwhile)."""
    topic = unique("burst")
    messages = burst(topic, 3_000_000)
    assert len(messages) * len(messages[0]) > 2 * HIGH_WATER
    with BrokerProcess(MEMORY) as broker:
        sub = subscriber(broker.port, unique("burst-sub"), topic, closing=closing)
        reader = Reader(sub, messages)
        reader.start()
        pub = publisher(broker.port, unique("burst-pub"), closing)
        send_and_ping(pub, messages)
        reader.finish(30)
        # A hold that outlived the burst would be given up (and logged) within
        # 2 × HOLD_LIMIT of its start: wait that long after the last message.
        time.sleep(max(0.0, reader.last_at + 2 * HOLD_LIMIT + 0.5 - time.monotonic()))
        assert slow_lines(broker) == []


def slow_reader_run(closing: list[socket.socket | RawClient], size: int,
                    chunk: int) -> BrokerProcess:
    """~``size`` bytes from one publisher (in a thread: its ``sendall`` blocks while it
    is held) to a subscriber with a small receive buffer that reads ``chunk`` bytes every
    20 ms for 3 × HOLD_LIMIT, then freely. Every message must arrive, in order; the
    broker (stopped) is returned for its log."""
    topic = unique("steady")
    messages = burst(topic, size)
    with BrokerProcess(MEMORY) as broker:
        sub = subscriber(broker.port, unique("steady-sub"), topic, rcvbuf=16384,
                         closing=closing)
        reader = Reader(sub, messages, slow_chunk=chunk, pace=0.02,
                        slow_for=3 * HOLD_LIMIT)
        pub = publisher(broker.port, unique("steady-pub"), closing)
        reader.start()
        sent: list[BaseException | None] = []

        def send() -> None:
            try:
                send_and_ping(pub, messages, timeout=60)
                sent.append(None)
            except BaseException as exc:  # noqa: BLE001 - checked below
                sent.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        reader.finish(60)
        sender.join(10)
        assert sent == [None], sent
    return broker


def test_publisher_is_held_while_subscriber_reads_slowly(closing):
    """A subscriber reading 16 KiB every 20 ms (~800 KB/s) gets ~2 MB: each turn's
    output above HIGH_WATER holds the publisher, and the hold ends when the socket has
    taken it. The subscriber is never taken for slow, and nothing is lost."""
    broker = slow_reader_run(closing, 2_000_000, 16384)
    assert slow_lines(broker) == []


def test_slow_reader_behind_a_full_socket_buffer_keeps_its_publisher_held(closing):
    """As above, with ~6 MB at 8 KiB every 20 ms (~400 KB/s): enough to fill the
    kernel's send buffer and then the broker's own, so the publisher is held until the
    subscriber drains. It reads steadily all along, so it must not be taken for slow:
    progress counts the kernel's send queue too (before, only the broker's own buffer
    counted, and a full 4 MiB socket buffer reports writable only after about a third
    of it is read, which took longer than HOLD_LIMIT)."""
    broker = slow_reader_run(closing, 6_000_000, 8192)
    assert slow_lines(broker) == []


def test_stuck_reader_is_let_go_and_its_qos0_dropped(closing):
    """A subscriber that never reads holds its publisher for about 2 × HOLD_LIMIT, no
    longer: the broker logs it as slow, reads the publisher again, and drops the QoS 0
    messages that no longer fit in ``max_output_buffer``. Other clients are served all
    along, and the publisher still gets its PINGRESP.

    ``max_output_buffer`` is 1 MiB: a smaller one (below HIGH_WATER) drops before the
    subscriber ever gets congested, and so before any hold."""
    config = MEMORY + "[mqtt]\nmax_output_buffer = 1048576\n"
    topic = unique("stuck")
    messages = burst(topic, 8_000_000)
    with BrokerProcess(config, http_port=0) as broker:
        by_topic = unique("bystander")
        by_sub = publisher(broker.port, unique("bystander-sub"), closing)
        by_sub.subscribe(by_topic)
        by_pub = publisher(broker.port, unique("bystander-pub"), closing)
        stuck = subscriber(broker.port, unique("stuck-sub"), topic, rcvbuf=4096,
                           closing=closing)
        stuck_peer = f"127.0.0.1:{stuck.getsockname()[1]}"
        pub = publisher(broker.port, unique("stuck-pub"), closing)
        sent: list[BaseException | None] = []

        def send() -> None:
            try:
                pub.send_raw(b"".join(messages))
                sent.append(None)
            except BaseException as exc:  # noqa: BLE001 - checked below
                sent.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        # Held, then let go after 2 × HOLD_LIMIT without progress (generous bound).
        broker.wait_log(SLOW, timeout=10 * HOLD_LIMIT)
        lines = slow_lines(broker)
        assert len(lines) == 1 and f"{stuck_peer} on" in lines[0], lines

        # Others are served while the publisher floods.
        for i in range(3):
            by_pub.publish(by_topic, b"still here %d" % i)
            msg = by_sub.expect(Publish, 5)
            assert msg.payload == b"still here %d" % i
        by_sub.send_raw(PINGREQ)
        by_sub.expect(Pingresp, 5)

        # No longer held: the whole 8 MB is read, and the publisher is answered.
        sender.join(20)
        assert sent == [None], sent
        pub.send_raw(PINGREQ)
        pub.expect(Pingresp, 10)

        samples = scrape(broker)
        dropped = value(samples, "roost_messages_dropped_total", reason="slow_consumer")
        assert dropped > 0
        received = value(samples, "roost_messages_received_total", qos="0")
        assert received >= len(messages)
