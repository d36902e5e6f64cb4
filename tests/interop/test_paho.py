"""Interop with paho-mqtt 2.x (Eclipse Paho Python): MQTT 3.1.1 and 5.0 (and 3.1 for
plain publish/subscribe)."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.interop.conftest import (
    PahoFactory,
    Spawn,
    mosquitto_messages,
    mqttjs_messages,
    start_mosquitto_sub,
    start_mqttjs_sub,
)

PROTOCOLS = pytest.mark.parametrize("protocol", [4, 5], ids=["mqtt311", "mqtt5"])
# MQTT 3.1 (MQIsdp) as well, where the test does not depend on 3.1.1 or 5.0 features.
ALL_PROTOCOLS = pytest.mark.parametrize("protocol", [3, 4, 5],
                                        ids=["mqtt31", "mqtt311", "mqtt5"])
QOS = pytest.mark.parametrize("qos", [0, 1, 2], ids=["qos0", "qos1", "qos2"])


@ALL_PROTOCOLS
@QOS
def test_publish_subscribe(paho: PahoFactory, protocol: int, qos: int) -> None:
    topic = f"paho/pubsub/{protocol}/{qos}"
    sub = paho(protocol, f"paho-sub-{protocol}-{qos}").connect()
    assert sub.subscribe(topic, qos) == [qos]
    pub = paho(protocol, f"paho-pub-{protocol}-{qos}").connect()
    payloads = [f"m{i}-q{qos}".encode() for i in range(3)] + [b"\x00\xffbinary"]
    for p in payloads:
        pub.publish(topic, p, qos)
    got = [sub.expect() for _ in payloads]
    assert [(m.topic, m.payload, m.qos, m.retain) for m in got] == [
        (topic, p, qos, False) for p in payloads]
    sub.expect_nothing()


@PROTOCOLS
@QOS
def test_subscription_qos_caps_delivery(paho: PahoFactory, protocol: int, qos: int) -> None:
    """A QoS 2 publish reaches a subscriber at the QoS it subscribed with."""
    topic = f"paho/cap/{protocol}/{qos}"
    sub = paho(protocol).connect()
    assert sub.subscribe(topic, qos) == [qos]
    paho(protocol).connect().publish(topic, b"capped", 2)
    m = sub.expect()
    assert (m.topic, m.payload, m.qos) == (topic, b"capped", qos)


@PROTOCOLS
@pytest.mark.parametrize("qos", [1, 2], ids=["qos1", "qos2"])
def test_large_payload(paho: PahoFactory, protocol: int, qos: int) -> None:
    """A 1 MB payload (just under the broker's default packet limit) arrives intact."""
    topic = f"paho/large/{protocol}/{qos}"
    sub = paho(protocol).connect()
    sub.subscribe(topic, qos)
    big = bytes(range(256)) * 4000
    paho(protocol).connect().publish(topic, big, qos)
    m = sub.expect()
    assert (m.topic, len(m.payload), m.qos) == (topic, len(big), qos)
    assert m.payload == big


def test_receive_maximum_flow_control_mqtt5(paho: PahoFactory) -> None:
    """A subscriber with Receive Maximum 2 still gets a burst of 60 QoS 1/2 messages,
    each exactly once (the broker holds the rest until acknowledgements free the window)."""
    topic = "paho/receive-maximum"
    sub = paho(5, receive_maximum=2).connect()
    assert sub.subscribe(topic, 2) == [2]
    pub = paho(5).connect()
    infos = [pub.client.publish(topic, str(i).encode(), 1 + i % 2) for i in range(60)]
    for info in infos:
        info.wait_for_publish(5)
        assert info.is_published()
    got = [sub.expect() for _ in range(60)]
    assert sorted(int(m.payload) for m in got) == list(range(60))
    assert all(m.qos == 1 + int(m.payload) % 2 for m in got)
    # QoS 1 messages keep their order (paho reports QoS 2 ones only at PUBREL).
    qos1 = [int(m.payload) for m in got if m.qos == 1]
    assert qos1 == list(range(0, 60, 2))
    sub.expect_nothing()


@PROTOCOLS
def test_retained(paho: PahoFactory, protocol: int) -> None:
    topic = f"paho/retained/{protocol}"
    pub = paho(protocol).connect()
    pub.publish(topic, b"old", 1, retain=True)
    pub.publish(topic, b"kept", 1, retain=True)
    sub = paho(protocol).connect()
    assert sub.subscribe(topic, 1) == [1]
    m = sub.expect()
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, b"kept", 1, True)
    sub.expect_nothing()
    # A live publish to an existing subscriber arrives without the retain flag (3.3.1.3).
    pub.publish(topic, b"live", 1, retain=True)
    m = sub.expect()
    assert (m.payload, m.retain) == (b"live", False)
    # An empty retained message clears it: a new subscriber gets nothing.
    pub.publish(topic, b"", 1, retain=True)
    m = sub.expect()
    assert (m.payload, m.retain) == (b"", False)
    late = paho(protocol).connect()
    late.subscribe(topic, 1)
    late.expect_nothing(0.5)


WILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    port, protocol, topic = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho-will-" + sys.argv[2],
                    protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311)
    c.will_set(topic, b"paho died", qos=1)
    c.on_connect = lambda *a: print("connected", flush=True)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    time.sleep(30)
""")


@PROTOCOLS
def test_will_after_sigkill(paho: PahoFactory, spawn: Spawn, broker, protocol: int) -> None:
    """A paho client in a subprocess is SIGKILLed: the broker publishes its will."""
    topic = f"paho/will/kill/{protocol}"
    watcher = paho(protocol).connect()
    assert watcher.subscribe(topic, 1) == [1]
    victim = spawn([sys.executable, "-c", WILL_SCRIPT, str(broker.port), str(protocol),
                    topic])
    victim.wait_for(lambda line: line == "connected", "paho CONNACK")
    watcher.expect_nothing(0.2)
    victim.kill()
    m = watcher.expect()
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, b"paho died", 1, False)


@PROTOCOLS
def test_will_after_socket_close(paho: PahoFactory, protocol: int) -> None:
    """The client's socket is closed under it (no DISCONNECT): the will is published."""
    topic = f"paho/will/close/{protocol}"
    watcher = paho(protocol).connect()
    assert watcher.subscribe(topic, 2) == [2]
    version = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
    victim = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-will-close-{protocol}",
                         protocol=version)
    victim.will_set(topic, b"socket gone", qos=2, retain=False)
    victim.connect("127.0.0.1", watcher.port, keepalive=30)
    for _ in range(50):
        victim.loop(0.1)
        if victim.is_connected():
            break
    assert victim.is_connected()
    sock = victim.socket()
    assert sock is not None
    sock.close()
    m = watcher.expect()
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, b"socket gone", 2, False)


@PROTOCOLS
def test_no_will_after_clean_disconnect(paho: PahoFactory, protocol: int) -> None:
    topic = f"paho/will/clean/{protocol}"
    watcher = paho(protocol).connect()
    watcher.subscribe(topic, 1)
    c = paho(protocol)
    c.will_set(topic, b"should not appear", 1)
    c.connect()
    c.disconnect()
    watcher.expect_nothing(0.5)


def test_user_properties_mqtt5(paho: PahoFactory) -> None:
    topic = "paho/user-properties"
    sub = paho(5).connect()
    sub.subscribe(topic, 1)
    props = [("region", "eu"), ("dup-key", "first"), ("dup-key", "second"), ("ünï", "cödé")]
    paho(5).connect().publish(topic, b"with props", 1, user_properties=props)
    m = sub.expect()
    assert (m.topic, m.payload, m.qos) == (topic, b"with props", 1)
    assert m.user_properties == props


def test_user_properties_dropped_for_mqtt311_subscriber(paho: PahoFactory) -> None:
    """A 3.1.1 subscriber still gets the message (3.1.1 has no properties)."""
    topic = "paho/user-properties/311"
    sub = paho(4).connect()
    sub.subscribe(topic, 1)
    paho(5).connect().publish(topic, b"plain", 1, user_properties=[("k", "v")])
    m = sub.expect()
    assert (m.topic, m.payload, m.qos, m.user_properties) == (topic, b"plain", 1, None)


@PROTOCOLS
def test_persistent_session_receives_queued_messages(paho: PahoFactory, protocol: int) -> None:
    """clean_start False + session expiry (5.0) / clean session 0 (3.1.1): messages
    published while the client is offline are delivered when it comes back."""
    topic = f"paho/persistent/{protocol}"
    cid = f"paho-persistent-{protocol}"
    first = paho(protocol, cid, clean=True, session_expiry=60).connect()
    assert first.session_present is False
    if protocol == 4:
        # A 3.1.1 session persists only with clean session 0: make a fresh one that does.
        first.disconnect()
        first = paho(protocol, cid, clean=False).connect()
    assert first.subscribe(topic, 2) == [2]
    first.disconnect()

    pub = paho(protocol).connect()
    pub.publish(topic, b"while offline 1", 1)
    pub.publish(topic, b"while offline 2", 2)
    pub.publish(topic, b"while offline 3", 1)

    back = paho(protocol, cid, clean=False, session_expiry=60).connect()
    assert back.session_present is True
    got = [back.expect() for _ in range(3)]
    # paho hands a QoS 2 message to on_message only at PUBREL, so it may overtake; the
    # QoS 1 messages keep their order.
    assert sorted((m.topic, m.payload, m.qos, m.retain) for m in got) == [
        (topic, b"while offline 1", 1, False),
        (topic, b"while offline 2", 2, False),
        (topic, b"while offline 3", 1, False),
    ]
    assert [m.payload for m in got if m.qos == 1] == [b"while offline 1", b"while offline 3"]
    back.expect_nothing()
    # Still subscribed without subscribing again.
    pub.publish(topic, b"online again", 1)
    assert back.expect().payload == b"online again"


@PROTOCOLS
def test_unacknowledged_messages_resumed_after_reconnect(paho: PahoFactory,
                                                         protocol: int) -> None:
    """A persistent subscriber (manual_ack, so it withholds PUBACK and PUBCOMP) loses its
    socket. On reconnect the broker resends the QoS 1 PUBLISH with DUP set, and for the
    QoS 2 message, already PUBRECed, only the PUBREL: it is not delivered twice."""
    topic = f"paho/resume/{protocol}"
    cid = f"paho-resume-{protocol}"
    version = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
    kwargs = {} if protocol == 5 else {"clean_session": False}
    first = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=version,
                        manual_ack=True, **kwargs)
    got: list[tuple[bytes, int, bool]] = []
    first.on_message = lambda c, u, m: got.append((m.payload, m.qos, bool(m.dup)))
    subscribed: list[object] = []
    first.on_subscribe = lambda *args: subscribed.append(args)
    connect_kwargs: dict[str, object] = {}
    if protocol == 5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 60
        connect_kwargs = {"clean_start": True, "properties": props}
    first.connect("127.0.0.1", paho(protocol).port, 30, **connect_kwargs)
    first.subscribe(topic, 2)
    pub = paho(protocol).connect()

    def pump_until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not done() and time.monotonic() < deadline:
            first.loop(0.05)

    pump_until(lambda: bool(subscribed))
    assert subscribed, "no SUBACK"
    pub.publish(topic, b"at least once", 1)
    pub.publish(topic, b"exactly once", 2)
    pump_until(lambda: len(got) == 2)
    assert got == [(b"at least once", 1, False), (b"exactly once", 2, False)]
    sock = first.socket()
    assert sock is not None
    sock.close()

    back = paho(protocol, cid, clean=False, session_expiry=60)
    log: list[str] = []
    back.client.on_log = lambda c, u, level, text: log.append(text)
    back.connect()
    assert back.session_present is True
    m = back.expect()
    assert (m.topic, m.payload, m.qos, m.dup) == (topic, b"at least once", 1, True)
    back.expect_nothing(0.5)
    assert any(line.startswith("Received PUBREL") for line in log), log
    assert not any("PUBLISH" in line and "q2" in line for line in log), log


def test_session_expiry_zero_discards_session(paho: PahoFactory) -> None:
    topic = "paho/persistent/expired"
    cid = "paho-expiry-zero"
    first = paho(5, cid, clean=True, session_expiry=0).connect()
    first.subscribe(topic, 1)
    first.disconnect()
    paho(5).connect().publish(topic, b"lost", 1)
    back = paho(5, cid, clean=False, session_expiry=0).connect()
    assert back.session_present is False
    back.expect_nothing(0.5)


@PROTOCOLS
@pytest.mark.parametrize("qos", [1, 2], ids=["qos1", "qos2"])
def test_cross_family_paho_to_mosquitto_and_mqttjs(
        paho: PahoFactory, spawn: Spawn, broker, mosquitto_bins, mqttjs_ready,
        protocol: int, qos: int) -> None:
    """paho publishes; mosquitto_sub, MQTT.js and paho subscribers all receive it."""
    topic = f"cross/from-paho/{protocol}/{qos}"
    mosq = start_mosquitto_sub(spawn, broker.port, topic, 2, protocol, 2)
    js = start_mqttjs_sub(spawn, broker.port, topic, 2, protocol, 2)
    other = paho(4 if protocol == 5 else 5).connect()
    other.subscribe(topic, 2)
    pub = paho(protocol).connect()
    pub.publish(topic, b"from paho 1", qos)
    pub.publish(topic, b"from paho 2", qos)

    mosq.finish_ok()
    assert [(m["topic"], m["payload"], m["qos"], m["retain"])
            for m in mosquitto_messages(mosq)] == [
        (topic, "from paho 1", qos, 0), (topic, "from paho 2", qos, 0)]
    js.finish_ok()
    assert [(m["topic"], m["payload"], m["qos"], m["retain"])
            for m in mqttjs_messages(js)] == [
        (topic, "from paho 1", qos, False), (topic, "from paho 2", qos, False)]
    got = [other.expect() for _ in range(2)]
    assert [(m.payload, m.qos) for m in got] == [(b"from paho 1", qos), (b"from paho 2", qos)]
