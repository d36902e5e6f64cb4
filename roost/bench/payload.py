"""What a benchmark message carries, and its PUBLISH packets encoded ahead of time.

Each payload starts with a 20-byte header: a magic, the publisher's number, the
publisher's sequence number and the CLOCK_MONOTONIC time of sending in nanoseconds.
Workers on one machine share that clock, so a subscriber in any process computes the
latency as its own ``monotonic_ns()`` minus the stamp, and finds lost or duplicated
messages from the sequence numbers.
"""

from __future__ import annotations

import struct

from roost.mqtt.encoder import utf8, varint

MAGIC = b"RBv1"
HEADER = struct.Struct(">4sIIQ")
HEADER_SIZE = HEADER.size
_U16 = struct.Struct(">H")


class PublishTemplate:
    """The PUBLISH packets of one publisher, with everything but the packet id and the
    payload header encoded once."""

    __slots__ = ("publisher", "qos", "_fixed", "_props", "_pad")

    def __init__(self, topic: str, publisher: int, qos: int, size: int, level: int) -> None:
        if size < HEADER_SIZE:
            raise ValueError(f"payload of {size} bytes cannot hold the {HEADER_SIZE}-byte header")
        self.publisher = publisher
        self.qos = qos
        topic_bytes = utf8(topic)
        self._props = b"\x00" if level == 5 else b""
        self._pad = bytes(size - HEADER_SIZE)
        remaining = len(topic_bytes) + (2 if qos else 0) + len(self._props) + size
        self._fixed = bytes((0x30 | (qos << 1),)) + varint(remaining) + topic_bytes

    def packet(self, seq: int, packet_id: int, now_ns: int) -> bytes:
        """One PUBLISH; ``packet_id`` is ignored at QoS 0."""
        header = HEADER.pack(MAGIC, self.publisher, seq & 0xFFFFFFFF, now_ns)
        if self.qos:
            return b"".join((self._fixed, _U16.pack(packet_id), self._props, header, self._pad))
        return b"".join((self._fixed, self._props, header, self._pad))


def parse_header(payload: bytes | bytearray, offset: int = 0) -> tuple[int, int, int] | None:
    """(publisher, sequence, sent-at ns) of a benchmark payload, None for any other."""
    if len(payload) - offset < HEADER_SIZE:
        return None
    magic, publisher, seq, sent = HEADER.unpack_from(payload, offset)
    if magic != MAGIC:
        return None
    return publisher, seq, sent
