"""Guards against quadratic buffering in the decoder (no wall-clock assertions).

A decoder that re-copies or re-scans its whole buffer on every ``feed`` turns these tests
from well under a second into minutes, which the suite's timeout then reports.
"""

from __future__ import annotations

import pytest

from roost.mqtt import Decoder, Publish, encode

MIB = 1024 * 1024
CHUNK = 1000


@pytest.mark.parametrize("level", [4, 5])
def test_two_mib_of_small_publishes_in_1000_byte_chunks(level: int) -> None:
    packets = [Publish(f"sensors/{i % 97}", bytes([i % 256]) * 77, qos=1, packet_id=i % 65535 + 1)
               for i in range(64)]
    block = b"".join(encode(p, level) for p in packets)
    largest = max(len(encode(p, level)) for p in packets)
    repeats = -(-2 * MIB // len(block))
    stream = block * repeats
    assert len(stream) >= 2 * MIB

    decoder = Decoder(level)
    count = 0
    first_wrong = None
    for start in range(0, len(stream), CHUNK):
        for packet in decoder.feed(stream[start:start + CHUNK]):
            if first_wrong is None and packet != packets[count % len(packets)]:
                first_wrong = count
            count += 1
        assert decoder.buffered < largest
    assert first_wrong is None
    assert count == len(packets) * repeats
    assert decoder.buffered == 0


def test_one_mib_publish_in_1000_byte_chunks() -> None:
    packet = Publish("big", bytes(range(256)) * (MIB // 256), qos=2, packet_id=7)
    data = encode(packet, 5)
    assert len(data) > MIB
    decoder = Decoder(5)
    *starts, last = range(0, len(data), CHUNK)
    for start in starts:
        assert decoder.feed(data[start:start + CHUNK]) == []
        assert decoder.buffered == start + CHUNK
    assert decoder.feed(data[last:]) == [packet]
    assert decoder.buffered == 0
