"""The cross-field rules of roost/mqtt/conformance.py, on decoded packets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roost.mqtt import Properties, ReasonCode, Will
from roost.mqtt.conformance import check_connect, check_publish, is_utf8
from roost.mqtt.errors import ProtocolViolation
from roost.mqtt.packets import Connect, Publish

topics = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                 max_size=20)


def publish(topic: str = "t", **props: object) -> Publish:
    return Publish(topic, b"", 0, False, False, None, Properties(**props))  # type: ignore[arg-type]


@given(topics)
def test_response_topic_accepted_iff_nonempty_without_wildcards(topic: str) -> None:
    valid = bool(topic) and "+" not in topic and "#" not in topic
    for check in (lambda: check_publish(publish(response_topic=topic)),
                  lambda: check_connect(Connect("c", 5, will=Will(
                      "w", b"", 0, False, Properties(response_topic=topic))))):
        if valid:
            check()
        else:
            with pytest.raises(ProtocolViolation) as err:
                check()
            assert err.value.reason == ReasonCode.PROTOCOL_ERROR


def test_empty_topic_needs_an_alias() -> None:
    check_publish(publish("", topic_alias=1))
    with pytest.raises(ProtocolViolation):
        check_publish(publish(""))


def test_subscription_identifier_from_client() -> None:
    with pytest.raises(ProtocolViolation, match="MQTT-3.3.4-6"):
        check_publish(publish(subscription_identifiers=[1]))


def test_authentication_data_needs_a_method() -> None:
    check_connect(Connect("c", 5, properties=Properties(authentication_method="SCRAM",
                                                        authentication_data=b"x")))
    with pytest.raises(ProtocolViolation) as err:
        check_connect(Connect("c", 5, properties=Properties(authentication_data=b"x")))
    assert err.value.reason == ReasonCode.PROTOCOL_ERROR


@given(st.binary(max_size=16))
def test_will_payload_format(payload: bytes) -> None:
    connect = Connect("c", 5, will=Will("w", payload, 0, False,
                                        Properties(payload_format_indicator=1)))
    if is_utf8(payload):
        check_connect(connect)
    else:
        with pytest.raises(ProtocolViolation) as err:
            check_connect(connect)
        assert err.value.reason == ReasonCode.PAYLOAD_FORMAT_INVALID
    # Indicator 0 (unspecified bytes): any payload.
    check_connect(Connect("c", 5, will=Will("w", payload, 0, False,
                                            Properties(payload_format_indicator=0))))
