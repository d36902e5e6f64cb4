"""Pre-authentication floods against a real broker: thousands of sockets that never send
CONNECT, headers declaring huge packets, and clients trickling bytes of a packet they
never finish. The broker's memory stays bounded, every such socket is closed at the
limit that applies to it, and a healthy client keeps being served all along.

``ROOST_FLOOD_SOCKETS`` sets the size of the big flood (default 3000)."""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from roost.mqtt import Connack, Connect, Puback, Publish, ReasonCode
from roost.mqtt.encoder import varint
from tests.broker import BrokerProcess, RawClient
from tests.hardening import assert_closed, breaches, rss_kib, unique

FLOOD = int(os.environ.get("ROOST_FLOOD_SOCKETS", "3000"))
CONNECT_TIMEOUT = 2.0
MAX_PACKET = 1_048_576
THREADS = 6


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    config = f'[store]\ntype = "memory"\n[mqtt]\nconnect_timeout = {CONNECT_TIMEOUT}\n'
    with BrokerProcess(config) as proc:
        yield proc


class Heartbeat(threading.Thread):
    """A healthy client publishing QoS 1 to itself in a loop, timing each round trip."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.c = RawClient(port, 5)
        self.topic = f"flood/healthy/{unique('hb')}"
        self.c.connect(unique("heartbeat"))
        self.c.subscribe(self.topic, qos=1)
        self.stop = threading.Event()
        self.rounds = 0
        self.worst = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        pid = 0
        try:
            while not self.stop.is_set():
                pid = pid % 65535 + 1
                start = time.monotonic()
                self.c.publish(self.topic, b"beat", qos=1, packet_id=pid)
                got = [self.c.recv(5.0), self.c.recv(5.0)]
                msg = next(p for p in got if isinstance(p, Publish))
                assert any(isinstance(p, Puback) and p.packet_id == pid for p in got), got
                assert msg.packet_id is not None
                self.c.send(Puback(msg.packet_id))
                self.worst = max(self.worst, time.monotonic() - start)
                self.rounds += 1
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self, min_rounds: int) -> None:
        deadline = time.monotonic() + 5
        while self.rounds < min_rounds and self.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.stop.set()
        self.join(10)
        self.c.close()
        assert self.error is None, f"healthy client failed: {self.error!r}"
        assert self.rounds >= min_rounds, self.rounds
        assert self.worst < 2.0, f"a healthy round trip took {self.worst:.2f} s"


@pytest.fixture
def heartbeat(broker: BrokerProcess) -> Iterator[Heartbeat]:
    hb = Heartbeat(broker.port)
    hb.start()
    yield hb


def open_sockets(port: int, count: int, source: str) -> list[tuple[socket.socket, float]]:
    out = []
    for _ in range(count):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        out.append((s, time.monotonic()))
    return out


def watch_closed(socks: list[tuple[socket.socket, float]], deadline: float,
                 trickle: float | None = None) -> list[tuple[float, float, bytes]]:
    """Wait until the broker closes each socket: (opened, closed, bytes received) each,
    closed = inf for one still open at ``deadline``. With ``trickle``, each open socket
    sends one more byte (0x00) every ``trickle`` seconds meanwhile."""
    sel = selectors.DefaultSelector()
    results: dict[int, tuple[float, float, bytes]] = {}
    got: dict[int, bytes] = {}
    for i, (s, _) in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
        got[i] = b""
    next_drip = time.monotonic() + (trickle or 0)
    while len(results) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(0.05):
            i = key.data
            s, opened = socks[i]
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if data:
                got[i] += data
                continue
            results[i] = (opened, time.monotonic(), got[i])
            sel.unregister(s)
            s.close()
        if trickle and time.monotonic() >= next_drip:
            next_drip += trickle
            for i, (s, _) in enumerate(socks):
                if i not in results:
                    try:
                        s.send(b"\x00")
                    except OSError:
                        pass
    for i, (s, opened) in enumerate(socks):
        if i not in results:
            results[i] = (opened, float("inf"), got[i])
            s.close()
    sel.close()
    return [results[i] for i in range(len(socks))]


def flood(port: int, per_thread: int, prepare: bytes = b"", trickle: float | None = None,
          wait: float = CONNECT_TIMEOUT + 6) -> list[tuple[float, float, bytes]]:
    """Open THREADS × per_thread sockets from 127.0.0.2.. (one source address per
    thread), send ``prepare`` on each, and wait for the broker to close them."""

    def worker(n: int) -> list[tuple[float, float, bytes]]:
        socks = open_sockets(port, per_thread, f"127.0.0.{n + 2}")
        if prepare:
            for s, _ in socks:
                s.send(prepare)
        return watch_closed(socks, time.monotonic() + wait, trickle)

    with ThreadPoolExecutor(THREADS) as pool:
        return [r for rs in pool.map(worker, range(THREADS)) for r in rs]


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.before = rss_kib(pid)
        self.peak = self.before
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)

    def finish(self) -> tuple[int, int, int]:
        self.stop.set()
        self.join()
        return self.before, self.peak, rss_kib(self.pid)


def report(name: str, rss: tuple[int, int, int], times: list[float]) -> None:
    before, peak, after = rss
    print(f"\n{name}: RSS before {before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
          f"after {after / 1024:.1f} MiB; closed after {min(times):.2f}–{max(times):.2f} s")


def test_connect_flood_is_closed_at_the_timeout(broker, heartbeat):
    assert broker.proc is not None
    sampler = RssSampler(broker.proc.pid)
    sampler.start()
    results = flood(broker.port, FLOOD // THREADS)
    rss = sampler.finish()
    lifetimes = [closed - opened for opened, closed, _ in results]
    report(f"{len(results)} idle sockets", rss, lifetimes)
    assert all(data == b"" for _, _, data in results)
    # The timer starts when the broker accepts, a little after connect() returns.
    assert min(lifetimes) >= CONNECT_TIMEOUT - 0.1, min(lifetimes)
    assert max(lifetimes) <= CONNECT_TIMEOUT + 4, max(lifetimes)
    assert (rss[1] - rss[0]) / 1024 < 300, rss
    heartbeat.finish(min_rounds=20)
    assert broker.returncode is None
    counts = [count for _, count in breaches(broker, "connect_timeout")]
    assert len(counts) >= len(results) and max(counts) >= len(results)


def test_huge_declared_packets_closed_at_once(broker, heartbeat):
    assert broker.proc is not None
    sampler = RssSampler(broker.proc.pid)
    sampler.start()
    results = flood(broker.port, 100, prepare=b"\x10" + varint(200_000_000))
    rss = sampler.finish()
    lifetimes = [closed - opened for opened, closed, _ in results]
    report(f"{len(results)} sockets declaring 200 MB", rss, lifetimes)
    assert all(data == b"" for _, _, data in results)
    assert max(lifetimes) < CONNECT_TIMEOUT, max(lifetimes)  # not by the timeout
    assert (rss[1] - rss[0]) / 1024 < 100, rss
    # After CONNECT, the same declaration is answered with 0x95 (5.0) or a close.
    for level in (4, 5):
        c = RawClient(broker.port, level)
        c.connect(unique("flood-huge"))
        start = time.monotonic()
        c.send_raw(b"\x30" + varint(200_000_000))
        assert_closed(c, level, ReasonCode.PACKET_TOO_LARGE)
        assert time.monotonic() - start < 1.0
        c.close()
    heartbeat.finish(min_rounds=5)


def test_trickle_before_connect_closed_at_the_timeout(broker, heartbeat):
    """A CONNECT declared just under max_packet_size and sent a byte at a time: the
    trickle does not extend the time allowed for CONNECT."""
    header = b"\x10" + varint(MAX_PACKET - 1 - 4)  # 1 + 3 + body = MAX_PACKET - 1
    assert len(header) == 4
    assert broker.proc is not None
    sampler = RssSampler(broker.proc.pid)
    sampler.start()
    results = flood(broker.port, 10, prepare=header, trickle=0.25)
    lifetimes = [closed - opened for opened, closed, _ in results]
    report(f"{len(results)} trickling sockets", sampler.finish(), lifetimes)
    assert all(data == b"" for _, _, data in results)
    assert min(lifetimes) >= CONNECT_TIMEOUT - 0.1, min(lifetimes)
    assert max(lifetimes) <= CONNECT_TIMEOUT + 2, max(lifetimes)
    heartbeat.finish(min_rounds=5)


def test_trickle_after_connect_hits_keepalive(broker, heartbeat):
    """After CONNECT, keepalive counts whole packets: bytes of a packet that never
    completes do not keep a connection alive past 1.5 × keepalive."""
    clients = []
    for level in (4, 5):
        c = RawClient(broker.port, level)
        cid = unique(f"flood-trickle-{level}")
        c.send(Connect(cid, level, True, 2))
        assert c.expect(Connack).reason_code == ReasonCode.SUCCESS
        clients.append((c, level, cid))
    start = time.monotonic()
    for c, _, _ in clients:
        c.send_raw(b"\x30" + varint(MAX_PACKET - 10) + b"\x00\x07flood/t")
    threads = []
    lifetimes: dict[int, float] = {}

    def drip(c: RawClient, level: int) -> None:
        try:
            while time.monotonic() - start < 8:
                c.send_raw(b"x")
                time.sleep(0.25)
        except OSError:
            pass

    for c, level, _ in clients:
        t = threading.Thread(target=drip, args=(c, level), daemon=True)
        t.start()
        threads.append(t)
    for c, level, _ in clients:
        assert_closed(c, level, ReasonCode.KEEP_ALIVE_TIMEOUT, timeout=8)
        lifetimes[level] = time.monotonic() - start
    for t in threads:
        t.join()
    assert all(2.5 <= t <= 5 for t in lifetimes.values()), lifetimes
    for _, _, cid in clients:
        assert any(cid in line for line, _ in breaches(broker, "keepalive"))
    heartbeat.finish(min_rounds=5)
