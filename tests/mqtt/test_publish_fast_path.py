"""The decoder reads the common PUBLISH in place (``_publish_at``) and leaves everything
else to the general decoder. Both must agree on every input, well-formed or not, and the
``wire`` bytes it keeps must be exactly what a receiver at the same level is sent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.mqtt import Decoder, ProtocolViolation, Publish, encode
from roost.mqtt.decoder import decode_packet
from roost.mqtt.encoder import frame, publish_template
from roost.mqtt.errors import UsageError
from roost.mqtt.properties import NO_PROPERTIES, Properties
from tests.mqtt.test_roundtrip import publishes

EXAMPLES = settings(max_examples=400, deadline=None)


def _general(first: int, body: bytes, level: int) -> object:
    try:
        return decode_packet(first, body, level)
    except ProtocolViolation as exc:
        return (type(exc), str(exc))


def _streamed(first: int, body: bytes, level: int) -> object:
    try:
        packets = Decoder(level).feed(frame(first, body))
    except ProtocolViolation as exc:
        return (type(exc), str(exc))
    assert len(packets) == 1
    return packets[0]


@EXAMPLES
@given(st.sampled_from([4, 5]), st.integers(0x30, 0x3F), st.binary(max_size=24))
def test_fast_path_agrees_with_the_general_decoder_on_any_body(level, first, body):
    assert _streamed(first, body, level) == _general(first, body, level)


@EXAMPLES
@given(st.sampled_from([4, 5]).flatmap(lambda lv: st.tuples(st.just(lv), publishes(lv))))
def test_wire_is_the_packet_as_received_for_qos0_without_properties(case):
    level, packet = case
    data = encode(packet, level)
    (decoded,) = Decoder(level).feed(data)
    assert decoded == packet
    plain = level < 5 or packet.properties.is_empty()
    if packet.qos == 0 and plain:
        assert decoded.wire == data
        assert decoded.properties is NO_PROPERTIES
    else:
        assert decoded.wire is None


@pytest.mark.parametrize("level", [4, 5])
def test_wire_with_retain_and_a_long_payload(level):
    """A remaining length of more than one byte takes the general header parse."""
    packet = Publish("a/b", b"x" * 300, 0, True)
    data = encode(packet, level)
    (decoded,) = Decoder(level).feed(data + data[:5])
    assert decoded.wire == data and decoded.retain and decoded.payload == b"x" * 300


def test_v5_publish_with_properties_goes_to_the_general_decoder():
    packet = Publish("t", b"p", 0, False, False, None, Properties(content_type="text/plain"))
    (decoded,) = Decoder(5).feed(encode(packet, 5))
    assert decoded == packet and decoded.wire is None
    assert decoded.properties is not NO_PROPERTIES


def test_no_properties_is_shared_and_left_empty():
    """Decoded packets share it; nothing in the broker may have written to it."""
    assert NO_PROPERTIES.is_empty()


@EXAMPLES
@given(st.sampled_from([4, 5]), st.sampled_from([0x40, 0x41, 0x50, 0x62]),
       st.binary(max_size=6))
def test_puback_fast_path_agrees_with_the_general_decoder(level, first, body):
    assert _streamed(first, body, level) == _general(first, body, level)


@EXAMPLES
@given(st.sampled_from([4, 5]).flatmap(lambda lv: st.tuples(st.just(lv), publishes(lv))),
       st.integers(1, 0xFFFF))
def test_publish_template_splices_any_packet_id(case, packet_id):
    level, packet = case
    if not packet.qos:
        with pytest.raises(UsageError):
            publish_template(packet, level)
        return
    head, tail = publish_template(packet, level)
    packet.packet_id = packet_id
    assert head + packet_id.to_bytes(2, "big") + tail == encode(packet, level)
