"""The decoder never holds more than ``max_packet_size`` bytes of one connection's input:
a declared size above it is refused from the fixed header alone, before any body byte,
and a packet at the limit is buffered only as its bytes arrive."""

from __future__ import annotations

import pytest

from roost.mqtt import Decoder, PacketTooLarge, Publish, encode
from roost.mqtt.encoder import varint

LIMIT = 1024


@pytest.mark.parametrize("declared", [LIMIT - 1, 200_000_000, 268_435_455])
def test_oversized_declaration_refused_from_the_header(declared):
    decoder = Decoder(4, max_packet_size=LIMIT)
    header = b"\x30" + varint(declared)
    with pytest.raises(PacketTooLarge):
        decoder.feed(header)  # nothing of the body was sent
    assert decoder.buffered == 0


def test_header_cut_inside_the_length_waits_without_buffering_more():
    decoder = Decoder(4, max_packet_size=LIMIT)
    assert decoder.feed(b"\x30\xff") == []
    assert decoder.buffered == 2
    with pytest.raises(PacketTooLarge):
        decoder.feed(b"\xff\x7f")


def test_packet_at_the_limit_is_buffered_as_it_arrives():
    decoder = Decoder(4, max_packet_size=LIMIT)
    packet = encode(Publish("t", b"x" * (LIMIT - 3 - 3)), 4)
    assert len(packet) == LIMIT
    most = 0
    for i in range(0, LIMIT - 1, 7):
        assert decoder.feed(packet[i:i + 7]) == [] or i + 7 >= LIMIT
        most = max(most, decoder.buffered)
    assert most <= LIMIT
    assert decoder.buffered == 0  # the last chunk completed it


def test_many_packets_in_one_chunk_leave_nothing_buffered():
    decoder = Decoder(4, max_packet_size=LIMIT)
    one = encode(Publish("t", b"x" * 100), 4)
    assert len(decoder.feed(one * 5000)) == 5000
    assert decoder.buffered == 0


def test_one_too_many_after_a_packet_at_the_limit():
    decoder = Decoder(4, max_packet_size=LIMIT)
    fits = encode(Publish("t", b"x" * (LIMIT - 6)), 4)
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(fits + b"\x30" + varint(LIMIT))
    assert [p.payload for p in info.value.preceding] == [b"x" * (LIMIT - 6)]  # type: ignore[attr-defined]
    assert decoder.buffered == 0
