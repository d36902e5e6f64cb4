"""Pre-encoded PUBLISH packets are the codec's packets, byte for byte."""

from __future__ import annotations

import pytest

from roost.bench.payload import HEADER_SIZE, PublishTemplate, parse_header
from roost.mqtt import Decoder, Publish, encode


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("size", [HEADER_SIZE, 64, 300])
def test_template_matches_codec(level, qos, size):
    t = PublishTemplate("bench/pairs/7", 7, qos, size, level)
    raw = t.packet(41, 513 if qos else 0, 123_456_789)
    decoder = Decoder(level)
    [packet] = decoder.feed(raw)
    assert isinstance(packet, Publish)
    assert packet.topic == "bench/pairs/7" and packet.qos == qos
    assert len(packet.payload) == size
    assert packet.packet_id == (513 if qos else None)
    assert parse_header(packet.payload) == (7, 41, 123_456_789)
    assert raw == encode(packet, level)


def test_foreign_payloads_have_no_header():
    assert parse_header(b"hello") is None
    assert parse_header(b"x" * 40) is None


def test_payload_must_hold_the_header():
    with pytest.raises(ValueError):
        PublishTemplate("t", 1, 0, HEADER_SIZE - 1, 4)
