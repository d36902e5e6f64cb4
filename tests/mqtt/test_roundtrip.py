"""Property tests: random valid packets survive encode -> decode under any stream chunking,
and random bytes never make the decoder raise anything but ProtocolViolation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.mqtt import (
    Auth,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Properties,
    ProtocolViolation,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    ReasonCode,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)
from roost.mqtt.properties import SPECS, PacketKind, PropertySpec, WireType

EXAMPLES = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)

LEVELS = st.sampled_from([3, 4, 5])

# MQTT UTF-8 strings: well-formed (no surrogates) and no U+0000 (1.5.4).
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
blobs = st.binary(max_size=12)
packet_ids = st.integers(1, 0xFFFF)
reason_codes = st.sampled_from(list(ReasonCode))

# The six things a 3.x CONNACK can say, as the 5.0 reasons the decoder maps them to.
V3_CONNACK_REASONS = st.sampled_from([
    ReasonCode.SUCCESS, ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, ReasonCode.SERVER_UNAVAILABLE,
    ReasonCode.BAD_USER_NAME_OR_PASSWORD, ReasonCode.NOT_AUTHORIZED,
])
V3_SUBACK_CODES = st.sampled_from([
    ReasonCode.SUCCESS, ReasonCode.GRANTED_QOS_1, ReasonCode.GRANTED_QOS_2,
    ReasonCode.UNSPECIFIED_ERROR,
])


def _value(spec: PropertySpec) -> st.SearchStrategy[Any]:
    wire = spec.wire
    if wire is WireType.UTF8:
        return texts
    if wire is WireType.BINARY:
        return blobs
    if wire is WireType.UTF8_PAIR:
        return st.tuples(texts, texts)
    top = {WireType.BYTE: 0xFF, WireType.U16: 0xFFFF, WireType.U32: 0xFFFF_FFFF,
           WireType.VARINT: 268_435_455}[wire]
    low = spec.minimum if spec.minimum is not None else 0
    high = spec.maximum if spec.maximum is not None else top
    return st.integers(low, high)


def properties(kind: PacketKind, level: int) -> st.SearchStrategy[Properties]:
    """Random properties that may appear in ``kind``; always empty before MQTT 5."""
    if level != 5:
        return st.just(Properties())
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for spec in SPECS.values():
        if kind not in spec.allowed:
            continue
        if spec.repeatable:
            # SUBSCRIBE may carry at most one subscription identifier (3.8.2.1.2).
            most = 1 if kind is PacketKind.SUBSCRIBE and spec.attr == "subscription_identifiers" \
                else 3
            fields[spec.attr] = st.lists(_value(spec), max_size=most)
        else:
            fields[spec.attr] = st.none() | _value(spec)
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: Properties(**kw))


@st.composite
def connects(draw: st.DrawFn, level: int) -> Connect:
    username = draw(st.none() | texts)
    password = draw(st.none() | blobs)
    if level != 5 and username is None:
        password = None  # MQTT-3.1.2-22: no password without a user name before 5.0
    will = None
    if draw(st.booleans()):
        will = Will(draw(texts), draw(blobs), draw(st.integers(0, 2)), draw(st.booleans()),
                    draw(properties(PacketKind.WILL, level)))
    return Connect(draw(texts), level, draw(st.booleans()), draw(st.integers(0, 0xFFFF)),
                   username, password, will, draw(properties(PacketKind.CONNECT, level)))


@st.composite
def connacks(draw: st.DrawFn, level: int) -> Connack:
    reason = draw(reason_codes if level == 5 else V3_CONNACK_REASONS)
    return Connack(reason, draw(st.booleans()), draw(properties(PacketKind.CONNACK, level)))


@st.composite
def publishes(draw: st.DrawFn, level: int) -> Publish:
    qos = draw(st.integers(0, 2))
    packet_id = draw(packet_ids) if qos else None
    dup = draw(st.booleans()) if qos else False
    return Publish(draw(texts), draw(st.binary(max_size=40)), qos, draw(st.booleans()), dup,
                   packet_id, draw(properties(PacketKind.PUBLISH, level)))


def acks(cls: type, kind: PacketKind, level: int) -> st.SearchStrategy[Packet]:
    if level != 5:
        return st.builds(cls, packet_ids)
    return st.builds(cls, packet_ids, reason_codes, properties(kind, level))


@st.composite
def subscribes(draw: st.DrawFn, level: int) -> Subscribe:
    if level == 5:
        request = st.builds(SubscriptionRequest, texts, st.integers(0, 2), st.booleans(),
                            st.booleans(), st.integers(0, 2))
    else:
        request = st.builds(SubscriptionRequest, texts, st.integers(0, 2))
    return Subscribe(draw(packet_ids), draw(st.lists(request, min_size=1, max_size=4)),
                     draw(properties(PacketKind.SUBSCRIBE, level)))


@st.composite
def subacks(draw: st.DrawFn, level: int) -> Suback:
    codes = reason_codes if level == 5 else V3_SUBACK_CODES
    return Suback(draw(packet_ids), draw(st.lists(codes, min_size=1, max_size=4)),
                  draw(properties(PacketKind.SUBACK, level)))


@st.composite
def unsubscribes(draw: st.DrawFn, level: int) -> Unsubscribe:
    return Unsubscribe(draw(packet_ids), draw(st.lists(texts, min_size=1, max_size=4)),
                       draw(properties(PacketKind.UNSUBSCRIBE, level)))


@st.composite
def unsubacks(draw: st.DrawFn, level: int) -> Unsuback:
    if level != 5:
        return Unsuback(draw(packet_ids))
    return Unsuback(draw(packet_ids), draw(st.lists(reason_codes, min_size=1, max_size=4)),
                    draw(properties(PacketKind.UNSUBACK, level)))


def reasoned(cls: type, kind: PacketKind, level: int) -> st.SearchStrategy[Packet]:
    if level != 5:
        return st.builds(cls)
    return st.builds(cls, reason_codes, properties(kind, level))


def packets(level: int, *, connect: bool = True) -> st.SearchStrategy[Packet]:
    """Any packet that can be sent at ``level`` (CONNECT optional: it resets the level)."""
    options: list[st.SearchStrategy[Packet]] = [
        connacks(level),
        publishes(level),
        acks(Puback, PacketKind.PUBACK, level),
        acks(Pubrec, PacketKind.PUBREC, level),
        acks(Pubrel, PacketKind.PUBREL, level),
        acks(Pubcomp, PacketKind.PUBCOMP, level),
        subscribes(level),
        subacks(level),
        unsubscribes(level),
        unsubacks(level),
        st.just(Pingreq()),
        st.just(Pingresp()),
        reasoned(Disconnect, PacketKind.DISCONNECT, level),
    ]
    if connect:
        options.append(connects(level))
    if level == 5:
        options.append(reasoned(Auth, PacketKind.AUTH, level))
    return st.one_of(options)


level_and_packet = LEVELS.flatmap(lambda lv: st.tuples(st.just(lv), packets(lv)))


@st.composite
def level_and_stream(draw: st.DrawFn) -> tuple[int, list[Packet]]:
    """Several packets of one level; a CONNECT, if any, comes first as it sets the level."""
    level = draw(LEVELS)
    stream = draw(st.lists(packets(level, connect=False), min_size=1, max_size=6))
    if draw(st.booleans()):
        stream.insert(0, draw(connects(level)))
    return level, stream


def _encode_all(stream: list[Packet], level: int) -> bytes:
    return b"".join(encode(p, level) for p in stream)


# ---- Round trips --------------------------------------------------------------------------


@EXAMPLES
@given(level_and_packet)
def test_roundtrip(case: tuple[int, Packet]) -> None:
    level, packet = case
    data = encode(packet, level)
    decoder = Decoder(level)
    assert decoder.feed(data) == [packet]
    assert decoder.buffered == 0
    # Canonical: re-encoding the decoded packet gives the same bytes.
    assert encode(decoder.feed(data)[0], level) == data


@EXAMPLES
@given(level_and_stream())
def test_stream_byte_at_a_time(case: tuple[int, list[Packet]]) -> None:
    level, stream = case
    data = _encode_all(stream, level)
    decoder = Decoder(level)
    out: list[Packet] = []
    for i in range(len(data)):
        out += decoder.feed(data[i:i + 1])
    assert out == stream
    assert decoder.buffered == 0


@EXAMPLES
@given(level_and_stream(), st.data())
def test_stream_random_chunks(case: tuple[int, list[Packet]], data: st.DataObject) -> None:
    level, stream = case
    raw = _encode_all(stream, level)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=12), label="cuts"))
    bounds = [0, *cuts, len(raw)]
    decoder = Decoder(level)
    out: list[Packet] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        out += decoder.feed(raw[start:end])  # empty chunks included
    assert out == stream
    assert decoder.buffered == 0


@EXAMPLES
@given(level_and_packet)
def test_truncation_needs_more_bytes(case: tuple[int, Packet]) -> None:
    level, packet = case
    data = encode(packet, level)
    for k in range(len(data)):
        decoder = Decoder(level)
        assert decoder.feed(data[:k]) == []
        assert decoder.buffered == k
        # ... and the rest completes it.
        assert decoder.feed(data[k:]) == [packet]


# ---- Robustness: nothing but ProtocolViolation, ever ----------------------------------------


def _feed_expecting_only_violations(decoder: Decoder, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except ProtocolViolation as exc:
        assert isinstance(exc.reason, ReasonCode)
        assert exc.reason.is_error


@EXAMPLES
@given(LEVELS, st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_violation(level: int, junk: bytes) -> None:
    _feed_expecting_only_violations(Decoder(level), [junk])


@EXAMPLES
@given(LEVELS, st.integers(0, 255), st.binary(max_size=100))
def test_random_bodies_only_raise_protocol_violation(level: int, first: int, body: bytes) -> None:
    # A well-framed packet of any type and flags with a random body reaches the parsers.
    framed = bytes((first, len(body))) if len(body) < 128 else bytes(
        (first, (len(body) & 0x7F) | 0x80, len(body) >> 7))
    _feed_expecting_only_violations(Decoder(level), [framed + body])


@EXAMPLES
@given(LEVELS.flatmap(lambda lv: st.tuples(st.just(lv), connects(lv))), st.binary(max_size=300))
def test_random_bytes_after_connect(case: tuple[int, Connect], junk: bytes) -> None:
    level, connect = case
    decoder = Decoder()
    assert decoder.feed(encode(connect, level)) == [connect]
    assert decoder.protocol_level == level
    _feed_expecting_only_violations(decoder, [junk])


@EXAMPLES
@given(level_and_packet, st.data())
def test_mutated_packets_only_raise_protocol_violation(
    case: tuple[int, Packet], data: st.DataObject,
) -> None:
    level, packet = case
    raw = bytearray(encode(packet, level))
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        i = data.draw(st.integers(0, len(raw) - 1), label="index")
        raw[i] = data.draw(st.integers(0, 255), label="byte")
    _feed_expecting_only_violations(Decoder(level), [bytes(raw)])


@pytest.mark.parametrize("level", [4, 5])
def test_violation_leaves_the_buffer_empty(level: int) -> None:
    decoder = Decoder(level)
    with pytest.raises(ProtocolViolation):
        decoder.feed(b"\x00\x00")
    assert decoder.buffered == 0
