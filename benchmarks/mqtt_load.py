"""A raw-socket MQTT 3.1.1 load generator for the benchmarks (one process per client).

It pre-encodes packets and pipelines them, so the generator costs little per message
and the same generator drives every broker compared.
"""

from __future__ import annotations

import socket
import struct
import time


def _connect_packet(client_id: str, clean: bool, keepalive: int = 60) -> bytes:
    cid = client_id.encode()
    body = (b"\x00\x04MQTT\x04" + bytes((0x02 if clean else 0,)) + struct.pack(">H", keepalive)
            + struct.pack(">H", len(cid)) + cid)
    return bytes((0x10, len(body))) + body


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, qos: int, pid: int) -> bytes:
    t = topic.encode()
    body = struct.pack(">H", len(t)) + t + (struct.pack(">H", pid) if qos else b"") + payload
    return bytes((0x30 | (qos << 1),)) + _remaining(len(body)) + body


class Client:
    def __init__(self, port: int, client_id: str, clean: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sock.sendall(_connect_packet(client_id, clean))
        first, body = self.read_packet()
        if first >> 4 != 2 or body[1] != 0:
            raise RuntimeError(f"CONNACK refused: {body!r}")

    def read_packet(self) -> tuple[int, bytes]:
        while True:
            buf = self.buf
            if len(buf) >= 2:
                n, shift, i = 0, 0, 1
                while i < len(buf):
                    b = buf[i]
                    n |= (b & 0x7F) << shift
                    i += 1
                    if not b & 0x80:
                        break
                    shift += 7
                else:
                    i = -1
                if i > 0 and len(buf) >= i + n:
                    first, body = buf[0], bytes(buf[i:i + n])
                    del buf[:i + n]
                    return first, body
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("broker closed the connection")
            self.buf += data

    def subscribe(self, topic_filter: str, qos: int) -> None:
        t = topic_filter.encode()
        body = b"\x00\x01" + struct.pack(">H", len(t)) + t + bytes((qos,))
        self.sock.sendall(bytes((0x82,)) + _remaining(len(body)) + body)
        first, _ = self.read_packet()
        assert first >> 4 == 9

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
        finally:
            self.sock.close()


def publish_qos1(port: int, topic: str, count: int, size: int, window: int,
                 client_id: str = "bench-pub") -> list[float]:
    """Publish ``count`` QoS 1 messages with at most ``window`` unacknowledged;
    return each message's publish-to-PUBACK latency in seconds."""
    c = Client(port, client_id)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    payload = b"x" * size
    next_i = 0
    acked = 0
    while acked < count:
        batch = []
        while next_i < count and len(sent_at) < window:
            pid = next_i % 65535 + 1
            batch.append(publish_packet(topic, payload, 1, pid))
            sent_at[pid] = time.perf_counter()
            next_i += 1
        if batch:
            c.sock.sendall(b"".join(batch))
        first, body = c.read_packet()
        if first >> 4 == 4:
            pid = struct.unpack(">H", body[:2])[0]
            latencies.append(time.perf_counter() - sent_at.pop(pid))
            acked += 1
    c.close()
    return latencies


def receive_qos1(port: int, client_id: str, count: int, clean: bool,
                 topic_filter: str | None = None, ready: object = None) -> float:
    """Receive ``count`` QoS 1 messages, acknowledging each; return seconds taken
    from the first message to the last."""
    c = Client(port, client_id, clean)
    if topic_filter:
        c.subscribe(topic_filter, 1)
    if ready is not None:
        ready.set()  # type: ignore[attr-defined]
    got = 0
    start = 0.0
    acks = []
    while got < count:
        first, body = c.read_packet()
        if first >> 4 != 3:
            continue
        if not got:
            start = time.perf_counter()
        got += 1
        tlen = struct.unpack(">H", body[:2])[0]
        acks.append(b"\x40\x02" + body[2 + tlen:4 + tlen])
        if len(acks) >= 50 or got == count:
            c.sock.sendall(b"".join(acks))
            acks.clear()
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed
