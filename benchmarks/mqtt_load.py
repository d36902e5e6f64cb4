"""A raw-socket MQTT 3.1.1 load generator for the benchmarks (one process per client).

It pre-encodes packets and pipelines them, so the generator costs little per message
and the same generator drives every broker compared.
"""

from __future__ import annotations

import socket
import struct
import time

from roost.mqtt import Connect, Publish, Subscribe, SubscriptionRequest, encode


def publish_template(topic: str, payload: bytes, qos: int) -> tuple[bytes, bytes, bytes]:
    """An MQTT 3.1.1 PUBLISH encoded once by the codec, split around its packet id, so
    the generator only splices two bytes per message: (head, packet id, tail)."""
    data = encode(Publish(topic, payload, qos, packet_id=1 if qos else None), 4)
    if not qos:
        return data, b"", b""
    at = len(data) - len(payload) - 2
    return data[:at], data[at:at + 2], data[at + 2:]


class Client:
    def __init__(self, port: int, client_id: str, clean: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sock.sendall(encode(Connect(client_id, 4, clean, 60), 4))
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
        self.sock.sendall(encode(Subscribe(1, [SubscriptionRequest(topic_filter, qos)]), 4))
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
    head, _, tail = publish_template(topic, b"x" * size, 1)
    next_i = 0
    acked = 0
    while acked < count:
        batch = []
        while next_i < count and len(sent_at) < window:
            pid = next_i % 65535 + 1
            batch += (head, struct.pack(">H", pid), tail)
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
