"""MQTT 5.0 rules that span fields (docs/limits.md, "Rules that span fields"): one
conversation per rule over a real socket, the broker's answer checked byte for byte,
and a subscriber checked to receive nothing the broker refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from roost.mqtt import Properties, ReasonCode, Will
from roost.mqtt.packets import Auth, Connect, Disconnect, Publish, Subscribe, SubscriptionRequest
from tests.broker import BrokerProcess, RawClient, online
from tests.conversations.test_connect import read_until_closed

DISCONNECT_PROTOCOL_ERROR = b"\xe0\x01\x82"
DISCONNECT_TOPIC_ALIAS_INVALID = b"\xe0\x01\x94"
CONNACK_PROTOCOL_ERROR = b"\x20\x03\x00\x82\x00"
CONNACK_PAYLOAD_FORMAT_INVALID = b"\x20\x03\x00\x99\x00"


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess() as proc:
        yield proc


@pytest.fixture
def watcher(broker: BrokerProcess) -> Iterator[RawClient]:
    """A 5.0 client subscribed to everything the rules below publish to."""
    c = online(lambda lv: RawClient(broker.port, lv), 5, "rules-watcher")
    c.subscribe("rules/#", qos=1)
    yield c
    c.close()


def v5(broker: BrokerProcess, client_id: str) -> RawClient:
    return online(lambda lv: RawClient(broker.port, lv), 5, client_id)


# (rule, PUBLISH properties, topic, expected answer). Each PUBLISH is QoS 1, so a
# broker that accepted it would answer PUBACK instead of the DISCONNECT expected.
PUBLISH_RULES = [
    ("response-topic-multi-level-wildcard [MQTT-3.3.2-14]",
     Properties(response_topic="resp/#"), "rules/a", DISCONNECT_PROTOCOL_ERROR),
    ("response-topic-single-level-wildcard [MQTT-3.3.2-14]",
     Properties(response_topic="resp/+/x"), "rules/a", DISCONNECT_PROTOCOL_ERROR),
    ("response-topic-empty [MQTT-4.7.3-1]",
     Properties(response_topic=""), "rules/a", DISCONNECT_PROTOCOL_ERROR),
    ("empty-topic-without-alias 3.3.2.1",
     Properties(content_type="text/plain"), "", DISCONNECT_PROTOCOL_ERROR),
    ("subscription-identifier-from-client [MQTT-3.3.4-6]",
     Properties(subscription_identifiers=[5]), "rules/a", DISCONNECT_PROTOCOL_ERROR),
    ("topic-alias-zero [MQTT-3.3.2-8]",
     Properties(topic_alias=0), "rules/a", DISCONNECT_TOPIC_ALIAS_INVALID),
    ("topic-alias-above-maximum [MQTT-3.3.2-9]",
     Properties(topic_alias=33), "rules/a", DISCONNECT_TOPIC_ALIAS_INVALID),
]


@pytest.mark.parametrize(("rule", "props", "topic", "answer"), PUBLISH_RULES,
                         ids=[r[0].split()[0] for r in PUBLISH_RULES])
def test_publish_rule(broker, watcher, rule, props, topic, answer):
    c = v5(broker, f"rules-pub-{rule.split()[0]}")
    c.send(Publish(topic, b"x", 1, False, False, 1, props))
    assert read_until_closed(c) == answer
    watcher.expect_nothing(0.2)


def test_publish_empty_topic_without_properties(broker, watcher):
    """The fast path of the decoder (no properties) meets the same rule."""
    c = v5(broker, "rules-pub-empty-noprops")
    c.send_raw(b"\x30\x04\x00\x00\x00x")  # QoS 0, topic "", no properties, payload "x"
    assert read_until_closed(c) == DISCONNECT_PROTOCOL_ERROR
    watcher.expect_nothing(0.2)


def test_valid_response_topic_is_forwarded(broker, watcher):
    c = v5(broker, "rules-pub-ok")
    c.publish("rules/ok", b"x", qos=1, packet_id=1,
              properties=Properties(response_topic="resp/ok", correlation_data=b"7"))
    assert c.recv_exact(4) == b"\x40\x02\x00\x01"
    msg = watcher.expect(Publish)
    assert msg.properties.response_topic == "resp/ok"  # type: ignore[attr-defined]


def test_payload_format_invalid_answered_in_puback(broker, watcher):
    c = v5(broker, "rules-pub-pfi")
    c.publish("rules/pfi", b"\xff\xfe", qos=1, packet_id=3,
              properties=Properties(payload_format_indicator=1))
    assert c.recv_exact(5) == b"\x40\x03\x00\x03\x99"
    watcher.expect_nothing(0.2)
    c.publish("rules/pfi", "ünïcode".encode(), qos=1, packet_id=4,
              properties=Properties(payload_format_indicator=1))
    assert c.recv_exact(4) == b"\x40\x02\x00\x04"
    assert watcher.expect(Publish).payload == "ünïcode".encode()  # type: ignore[attr-defined]


CONNECT_RULES = [
    ("will-response-topic-wildcard [MQTT-3.3.2-14]", Properties(),
     Will("rules/will", b"w", 0, False, Properties(response_topic="r/+")),
     CONNACK_PROTOCOL_ERROR),
    ("will-response-topic-empty [MQTT-4.7.3-1]", Properties(),
     Will("rules/will", b"w", 0, False, Properties(response_topic="")),
     CONNACK_PROTOCOL_ERROR),
    ("authentication-data-without-method 3.1.2.11.10",
     Properties(authentication_data=b"secret"), None, CONNACK_PROTOCOL_ERROR),
    ("will-payload-not-utf8 3.1.3.2.3", Properties(),
     Will("rules/will", b"\xc3\x28", 0, False, Properties(payload_format_indicator=1)),
     CONNACK_PAYLOAD_FORMAT_INVALID),
]


@pytest.mark.parametrize(("rule", "props", "will", "answer"), CONNECT_RULES,
                         ids=[r[0].split()[0] for r in CONNECT_RULES])
def test_connect_rule(broker, watcher, rule, props, will, answer):
    c = RawClient(broker.port, 5)
    c.send(Connect(f"rules-conn-{rule.split()[0]}", 5, True, 60, properties=props, will=will))
    assert read_until_closed(c) == answer
    # A refused CONNECT leaves no will behind to be published.
    watcher.expect_nothing(0.3)


def test_valid_will_response_topic_is_published(broker, watcher):
    c = RawClient(broker.port, 5)
    c.connect("rules-conn-will-ok", will=Will(
        "rules/will", b"w", 1, False, Properties(response_topic="r/ok")))
    c.close()
    will = watcher.expect(Publish)
    assert will.properties.response_topic == "r/ok"  # type: ignore[attr-defined]


STATEFUL_RULES = [
    ("disconnect-session-expiry-after-zero 3.14.2.2.2",
     Disconnect(ReasonCode.SUCCESS, Properties(session_expiry_interval=30)),
     DISCONNECT_PROTOCOL_ERROR),
    ("auth-without-authentication-method 4.12", Auth(ReasonCode.CONTINUE_AUTHENTICATION),
     DISCONNECT_PROTOCOL_ERROR),
    ("no-local-on-shared-subscription [MQTT-3.8.3-4]",
     Subscribe(1, [SubscriptionRequest("$share/g/rules/x", 1, True)]),
     DISCONNECT_PROTOCOL_ERROR),
]


@pytest.mark.parametrize(("rule", "packet", "answer"), STATEFUL_RULES,
                         ids=[r[0].split()[0] for r in STATEFUL_RULES])
def test_stateful_rule(broker, rule, packet, answer):
    c = v5(broker, f"rules-state-{rule.split()[0]}")
    c.send(packet)
    assert read_until_closed(c) == answer


def test_subscription_identifier_zero(broker):
    c = v5(broker, "rules-subid-zero")
    # SUBSCRIBE id 1, properties: Subscription Identifier 0, filter "a", QoS 0.
    c.send_raw(b"\x82\x08\x00\x01\x02\x0b\x00\x00\x01a\x00")
    assert read_until_closed(c) == DISCONNECT_PROTOCOL_ERROR


def test_receive_maximum_zero_closes_without_connack(broker):
    """A value the decoder refuses on its own: the CONNECT is never read whole, so no
    CONNACK (docs/limits.md, last row of the table)."""
    c = RawClient(broker.port, 5)
    c.send_raw(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x00\x00\x01c")
    assert read_until_closed(c) == b""
