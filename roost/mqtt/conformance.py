"""MQTT 5.0 rules that span fields of a packet a client sent, checked in one place.

The decoder checks what one field can say about itself (a property's type, range and
packet kind, reserved bits). The rules here need two fields at once — a property and
the topic it names, a property and another property, a flag and a payload — so they run
on the decoded packet, before the engine acts on it. Rules that need the connection's
state (a Topic Alias beyond the negotiated maximum, a session expiry set on DISCONNECT
after 0 at CONNECT, AUTH without an authentication method) are the engine's and are
listed beside these in docs/limits.md.

``check_connect`` and ``check_publish`` raise ``ProtocolViolation`` carrying the reason
code the client must see: 0x82 Protocol Error unless a rule says otherwise.
"""

from __future__ import annotations

from roost.mqtt.errors import ProtocolViolation
from roost.mqtt.packets import Connect, Publish
from roost.mqtt.properties import Properties
from roost.mqtt.reason_codes import ReasonCode


def is_utf8(payload: bytes) -> bool:
    """Whether ``payload`` is well-formed UTF-8 (what Payload Format Indicator 1 says)."""
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_response_topic(props: Properties, where: str) -> None:
    topic = props.response_topic
    if topic is None:
        return
    if not topic:
        # A Response Topic is a Topic Name, and a Topic Name has at least one
        # character [MQTT-4.7.3-1].
        raise ProtocolViolation(f"{where}: empty Response Topic [MQTT-4.7.3-1]")
    if "+" in topic or "#" in topic:
        raise ProtocolViolation(
            f"{where}: Response Topic {topic!r} contains a wildcard [MQTT-3.3.2-14]")


def check_connect(p: Connect) -> None:
    """Cross-field rules of a CONNECT (5.0; a 3.x CONNECT carries no properties).

    Raises ``ProtocolViolation``: 0x82 for Authentication Data without an
    Authentication Method (3.1.2.11.10) and for a will whose Response Topic is empty or
    has a wildcard (3.1.3.2.5, [MQTT-3.3.2-14]); 0x99 Payload format invalid for a will
    whose Payload Format Indicator says UTF-8 and whose payload is not (3.1.3.2.3, which
    lets the server check it).
    """
    props = p.properties
    if props.authentication_data is not None and props.authentication_method is None:
        raise ProtocolViolation(
            "Authentication Data without Authentication Method (3.1.2.11.10)")
    will = p.will
    if will is None:
        return
    _check_response_topic(will.properties, "will")
    if will.properties.payload_format_indicator == 1 and not is_utf8(will.payload):
        raise ProtocolViolation("will payload is not UTF-8 as its Payload Format "
                                "Indicator says (3.1.3.2.3)", ReasonCode.PAYLOAD_FORMAT_INVALID)


def check_publish(p: Publish) -> None:
    """Cross-field rules of a PUBLISH a client sent.

    Raises ``ProtocolViolation`` 0x82 for: a zero-length Topic Name without a Topic
    Alias (3.3.2.1); a Subscription Identifier (only the server sends one,
    [MQTT-3.3.4-6]); a Response Topic that is empty or has a wildcard ([MQTT-3.3.2-14]).
    The payload's format (0x99) is answered in the acknowledgement by the engine, since
    a QoS 1/2 PUBLISH with a bad payload is refused, not a protocol error.
    """
    props = p.properties
    if not p.topic and props.topic_alias is None:
        raise ProtocolViolation("zero-length topic name without a topic alias (3.3.2.1)")
    if props.subscription_identifiers:
        raise ProtocolViolation("PUBLISH from a client with a subscription identifier "
                                "[MQTT-3.3.4-6]")
    _check_response_topic(props, "PUBLISH")
