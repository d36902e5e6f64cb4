"""Messages through NATS headers: what goes out is ASCII, and comes back the same."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roost.cluster.codec import BadHeaders, headers_for, headers_size, message_from, source_on
from roost.engine.message import Message, Origin
from roost.mqtt.properties import NO_PROPERTIES, Properties

mqtt_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                    max_size=30)


@given(origin=st.none() | mqtt_text, qos=st.integers(0, 2), retain=st.booleans(),
       content_type=st.none() | mqtt_text, pairs=st.lists(st.tuples(mqtt_text, mqtt_text),
                                                           max_size=3),
       data=st.none() | st.binary(max_size=20), expiry=st.none() | st.integers(0, 10**6))
def test_round_trip(origin: str | None, qos: int, retain: bool, content_type: str | None,
                    pairs: list[tuple[str, str]], data: bytes | None,
                    expiry: int | None) -> None:
    props = Properties(content_type=content_type, correlation_data=data,
                       user_properties=pairs)
    if props.is_empty():
        props = NO_PROPERTIES
    sent = Message("t", b"p", qos, retain, props, origin,
                   None if expiry is None else 100.0 + expiry)
    headers = headers_for(sent, 100.0, ("n1", origin or "k"))
    assert all(v.isascii() and v.isprintable() and v == v.strip() for v in headers.values())
    got = message_from("t", b"p", headers, 5.0)
    assert (got.qos, got.retain, got.origin, got.properties) == (qos, retain, origin, props)
    assert got.expires_at == (None if expiry is None else 5.0 + expiry)
    assert got.origin_kind is Origin.REMOTE
    assert source_on(headers, "n1") == (origin or "k") and source_on(headers, "n2") is None
    assert headers_size(headers) == len(b"NATS/1.0\r\n\r\n") + sum(
        len(f"{k}: {v}\r\n") for k, v in headers.items())


@pytest.mark.parametrize("headers", [
    None, {}, {"Roost-Flags": "3"}, {"Roost-Flags": "1x"}, {"Other": "1"},
    {"Roost-Flags": "0", "Roost-Client": "%FF"},
    {"Roost-Flags": "0", "Roost-Props": "not base64!"},
    {"Roost-Flags": "0", "Roost-Props": "AQ=="},  # a length with nothing after it
    {"Roost-Flags": "0", "Roost-Props": "AgEBAA=="},  # bytes after the properties
    {"Roost-Flags": "0", "Roost-Expiry": "-1"},
])
def test_headers_no_roost_node_wrote_are_refused(headers: dict[str, str] | None) -> None:
    with pytest.raises(BadHeaders):
        message_from("t", b"", headers, 0.0)
