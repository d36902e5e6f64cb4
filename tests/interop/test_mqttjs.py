"""Interop with MQTT.js 5 (Node.js), protocolVersion 4 (3.1.1) and 5, driven through
tests/interop/mqttjs/client.js."""

from __future__ import annotations

import pytest

from tests.interop.conftest import (
    MQTTJS_DIR,
    PahoFactory,
    Spawn,
    mosquitto_messages,
    mqttjs_args,
    mqttjs_messages,
    run_mqttjs_pub,
    start_mosquitto_sub,
    start_mqttjs_sub,
)

PROTOCOLS = pytest.mark.parametrize("protocol", [4, 5], ids=["mqtt311", "mqtt5"])
QOS = pytest.mark.parametrize("qos", [0, 1, 2], ids=["qos0", "qos1", "qos2"])

pytestmark = pytest.mark.usefixtures("mqttjs_ready")


def summary(proc) -> list[tuple[str, str, int, bool]]:
    return [(m["topic"], m["payload"], m["qos"], m["retain"]) for m in mqttjs_messages(proc)]


@PROTOCOLS
@QOS
def test_publish_subscribe(spawn: Spawn, broker, protocol: int, qos: int) -> None:
    topic = f"js/pubsub/{protocol}/{qos}"
    payloads = [f"js {i} qos {qos}" for i in range(3)]
    sub = start_mqttjs_sub(spawn, broker.port, topic, qos, protocol, len(payloads))
    assert sub.json_lines()[1] == {"event": "subscribed", "granted": [qos]}
    run_mqttjs_pub(spawn, broker.port, topic, qos, protocol, payloads)
    sub.finish_ok()
    assert summary(sub) == [(topic, p, qos, False) for p in payloads]
    assert [m["dup"] for m in mqttjs_messages(sub)] == [False] * len(payloads)
    # The subscriber allowed no topic aliases, so none are used towards it.
    assert [m["topicAlias"] for m in mqttjs_messages(sub)] == [None] * len(payloads)


@PROTOCOLS
def test_retained(spawn: Spawn, broker, protocol: int) -> None:
    topic = f"js/retained/{protocol}"
    run_mqttjs_pub(spawn, broker.port, topic, 1, protocol, ["stale", "retained js"],
                   "--retain")
    sub = start_mqttjs_sub(spawn, broker.port, topic, 2, protocol, 1)
    sub.finish_ok()
    assert summary(sub) == [(topic, "retained js", 1, True)]


@PROTOCOLS
@pytest.mark.parametrize("die", ["destroy", "exit"])
def test_will_after_abrupt_end(spawn: Spawn, broker, protocol: int, die: str) -> None:
    """MQTT.js connects with a will, then destroys its stream (or just exits) without
    DISCONNECT: an MQTT.js subscriber receives the will."""
    topic = f"js/will/{protocol}/{die}"
    watcher = start_mqttjs_sub(spawn, broker.port, topic, 2, protocol, 1)
    victim = spawn(mqttjs_args("will", broker.port, protocol, "--will-topic", topic,
                               "--will-payload", f"js gone ({die})", "--will-qos", "2",
                               "--die", die), cwd=MQTTJS_DIR)
    victim.finish_ok()
    assert victim.json_lines()[0]["event"] == "connected"
    watcher.finish_ok()
    assert summary(watcher) == [(topic, f"js gone ({die})", 2, False)]


@PROTOCOLS
def test_retained_will_after_sigkill(spawn: Spawn, broker, protocol: int) -> None:
    topic = f"js/will-retained/{protocol}"
    victim = spawn(mqttjs_args("will", broker.port, protocol, "--will-topic", topic,
                               "--will-payload", "js offline", "--will-qos", "1",
                               "--will-retain", "--die", "hang"), cwd=MQTTJS_DIR)
    victim.wait_for(lambda line: '"event":"connected"' in line, "MQTT.js CONNACK")
    victim.kill()
    sub = start_mqttjs_sub(spawn, broker.port, topic, 1, protocol, 1)
    sub.finish_ok()
    assert summary(sub) == [(topic, "js offline", 1, True)]


@PROTOCOLS
def test_persistent_session(spawn: Spawn, broker, protocol: int) -> None:
    topic = f"js/persistent/{protocol}"
    session = ["--client-id", f"js-persistent-{protocol}", "--no-clean",
               "--session-expiry", "60"]
    # Subscribe, then leave with DISCONNECT (count 0); the session stays.
    first = start_mqttjs_sub(spawn, broker.port, topic, 1, protocol, 0, *session)
    first.finish_ok()
    run_mqttjs_pub(spawn, broker.port, topic, 1, protocol, ["queued 1", "queued 2"])
    back = spawn(mqttjs_args("sub", broker.port, protocol, "--topic", topic, "--qos", "1",
                             "--count", "2", *session), cwd=MQTTJS_DIR)
    back.finish_ok()
    assert back.json_lines()[0]["sessionPresent"] is True
    assert summary(back) == [(topic, "queued 1", 1, False), (topic, "queued 2", 1, False)]


def test_topic_aliases_both_ways_mqtt5(spawn: Spawn, broker, paho: PahoFactory) -> None:
    """MQTT.js publishes with automatically assigned topic aliases (topic sent once);
    an MQTT.js subscriber that allows aliases gets them from the broker; a 3.1.1 paho
    subscriber gets the full topic every time."""
    topic = "js/alias/topic/with/a/long/name"
    sub = start_mqttjs_sub(spawn, broker.port, topic, 1, 5, 3, "--topic-alias-max", "4")
    p = paho(4).connect()
    p.subscribe(topic, 1)
    payloads = ["a1", "a2", "a3"]
    pub = spawn(mqttjs_args("pub", broker.port, 5, "--topic", topic, "--qos", "1",
                            "--auto-alias", *[x for m in payloads for x in ("--message", m)]),
                cwd=MQTTJS_DIR)
    pub.finish_ok()
    sent = [(e["topic"], e["topicAlias"]) for e in pub.json_lines() if e["event"] == "sent"]
    assert sent == [(topic, 1), ("", 1), ("", 1)], "MQTT.js did not use topic aliases"
    sub.finish_ok()
    assert summary(sub) == [(topic, m, 1, False) for m in payloads]
    assert [m["topicAlias"] for m in mqttjs_messages(sub)] == [1, 1, 1]
    got = [p.expect() for _ in payloads]
    assert [(m.topic, m.payload) for m in got] == [(topic, m.encode()) for m in payloads]


def test_user_properties_mqtt5(spawn: Spawn, broker, paho: PahoFactory) -> None:
    topic = "js/user-properties"
    sub = start_mqttjs_sub(spawn, broker.port, topic, 1, 5, 1)
    p = paho(5).connect()
    p.subscribe(topic, 1)
    run_mqttjs_pub(spawn, broker.port, topic, 1, 5, ["props"], "--user-property", "a=1",
                   "--user-property", "a=2", "--user-property", "b=x")
    sub.finish_ok()
    [msg] = mqttjs_messages(sub)
    assert (msg["topic"], msg["payload"], msg["qos"]) == (topic, "props", 1)
    assert msg["userProperties"] == {"a": ["1", "2"], "b": "x"}
    m = p.expect()
    assert m.user_properties == [("a", "1"), ("a", "2"), ("b", "x")]


@PROTOCOLS
@pytest.mark.parametrize("qos", [1, 2], ids=["qos1", "qos2"])
def test_cross_family_mqttjs_to_mosquitto_and_paho(
        spawn: Spawn, broker, paho: PahoFactory, mosquitto_bins, protocol: int,
        qos: int) -> None:
    topic = f"cross/from-mqttjs/{protocol}/{qos}"
    mosq = start_mosquitto_sub(spawn, broker.port, topic, 2, protocol, 2)
    p = paho(5 if protocol == 4 else 4).connect()
    assert p.subscribe(topic, 2) == [2]
    run_mqttjs_pub(spawn, broker.port, topic, qos, protocol, ["js 1", "js 2"])
    mosq.finish_ok()
    assert [(m["topic"], m["payload"], m["qos"], m["retain"])
            for m in mosquitto_messages(mosq)] == [
        (topic, "js 1", qos, 0), (topic, "js 2", qos, 0)]
    got = [p.expect() for _ in range(2)]
    assert [(m.topic, m.payload, m.qos, m.retain) for m in got] == [
        (topic, b"js 1", qos, False), (topic, b"js 2", qos, False)]
