"""Interop with Debian's mosquitto_pub / mosquitto_sub (libmosquitto 2.0): MQTT 3.1.1
and 5.0 (and 3.1 where the test uses no newer feature)."""

from __future__ import annotations

import time

import pytest

from tests.interop.conftest import (
    PahoFactory,
    Spawn,
    mosquitto_messages,
    mosquitto_sub_args,
    mosquitto_version,
    mqttjs_messages,
    run_mosquitto_pub,
    start_mosquitto_sub,
    start_mqttjs_sub,
)

PROTOCOLS = pytest.mark.parametrize("protocol", [4, 5], ids=["mqtt311", "mqtt5"])
# MQTT 3.1 (MQIsdp) as well, where the test does not depend on 3.1.1 or 5.0 features.
ALL_PROTOCOLS = pytest.mark.parametrize("protocol", [3, 4, 5],
                                        ids=["mqtt31", "mqtt311", "mqtt5"])
QOS = pytest.mark.parametrize("qos", [0, 1, 2], ids=["qos0", "qos1", "qos2"])

pytestmark = pytest.mark.usefixtures("mosquitto_bins")


def summary(proc) -> list[tuple[str, str, int, int]]:
    return [(m["topic"], m["payload"], m["qos"], m["retain"]) for m in mosquitto_messages(proc)]


@ALL_PROTOCOLS
@QOS
def test_publish_subscribe(spawn: Spawn, broker, protocol: int, qos: int) -> None:
    topic = f"mosq/pubsub/{protocol}/{qos}"
    payloads = [f"line {i} at qos {qos}" for i in range(3)]
    sub = start_mosquitto_sub(spawn, broker.port, topic, qos, protocol, len(payloads))
    # -l publishes each stdin line as one message, over one connection.
    run_mosquitto_pub(spawn, broker.port, topic, qos, protocol, "-l",
                      stdin_text="".join(p + "\n" for p in payloads))
    sub.finish_ok()
    assert summary(sub) == [(topic, p, qos, 0) for p in payloads]


@ALL_PROTOCOLS
def test_retained(spawn: Spawn, broker, protocol: int) -> None:
    topic = f"mosq/retained/{protocol}"
    run_mosquitto_pub(spawn, broker.port, topic, 1, protocol, "-r", "-m", "first")
    run_mosquitto_pub(spawn, broker.port, topic, 1, protocol, "-r", "-m", "retained value")
    sub = spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                 "-V", mosquitto_version(protocol), "-t", topic, "-q", "1",
                 "-C", "1", "-W", "10", "-F", "%j"])
    sub.finish_ok()
    assert summary(sub) == [(topic, "retained value", 1, 1)]
    # An empty retained message clears it: a new subscriber waits 1 s (-W) for nothing.
    run_mosquitto_pub(spawn, broker.port, topic, 1, protocol, "-r", "-n")
    empty = spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                   "-V", mosquitto_version(protocol), "-t", topic, "-W", "1", "-F", "%j"])
    empty.finish(10)
    assert summary(empty) == []


@ALL_PROTOCOLS
def test_will_after_kill_9(spawn: Spawn, broker, protocol: int) -> None:
    """mosquitto_sub with --will-topic is killed with SIGKILL; another mosquitto_sub
    receives the will."""
    topic = f"mosq/will/{protocol}"
    watcher = start_mosquitto_sub(spawn, broker.port, topic, 1, protocol, 1)
    victim = start_mosquitto_sub(spawn, broker.port, f"mosq/will-victim/{protocol}", 0,
                                 protocol, 1, "--will-topic", topic,
                                 "--will-payload", "mosquitto_sub was killed",
                                 "--will-qos", "1")
    victim.kill()
    watcher.finish_ok()
    assert summary(watcher) == [(topic, "mosquitto_sub was killed", 1, 0)]


def test_will_delay_interval_mqtt5(spawn: Spawn, broker) -> None:
    """A 5.0 will with a Will Delay Interval of 1 s is published about 1 s after the
    connection dies, not at once."""
    topic = "mosq/will-delay"
    watcher = start_mosquitto_sub(spawn, broker.port, topic, 1, 5, 1)
    victim = start_mosquitto_sub(spawn, broker.port, "mosq/will-delay-victim", 0, 5, 1,
                                 "-x", "10", "--will-topic", topic, "--will-payload",
                                 "late", "--will-qos", "1",
                                 "-D", "will", "will-delay-interval", "1")
    killed = time.monotonic()
    victim.kill()
    watcher.wait_for(lambda line: line.startswith("{"), "the delayed will", timeout=5)
    elapsed = time.monotonic() - killed
    watcher.finish_ok()
    assert summary(watcher) == [(topic, "late", 1, 0)]
    assert 0.9 <= elapsed < 3, f"will published {elapsed:.2f} s after the kill"


@PROTOCOLS
def test_retained_will(spawn: Spawn, broker, protocol: int) -> None:
    """A will with --will-retain is stored: a later subscriber gets it, retain flag set."""
    topic = f"mosq/will-retained/{protocol}"
    victim = start_mosquitto_sub(spawn, broker.port, f"mosq/will-victim2/{protocol}", 0,
                                 protocol, 1, "--will-topic", topic, "--will-payload",
                                 "offline", "--will-qos", "2", "--will-retain")
    victim.kill()
    sub = start_mosquitto_sub(spawn, broker.port, topic, 2, protocol, 1)
    sub.finish_ok()
    assert summary(sub) == [(topic, "offline", 2, 1)]


@PROTOCOLS
def test_no_will_after_clean_exit(spawn: Spawn, broker, paho: PahoFactory,
                                  protocol: int) -> None:
    topic = f"mosq/will-clean/{protocol}"
    watcher = paho(protocol).connect()
    watcher.subscribe(topic, 1)
    # -E: exit (with DISCONNECT) once subscribed.
    spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
           "-V", mosquitto_version(protocol), "-t", "mosq/anything", "-E",
           "--will-topic", topic, "--will-payload", "nope"]).finish_ok()
    watcher.expect_nothing(0.5)


@PROTOCOLS
def test_persistent_session(spawn: Spawn, broker, protocol: int) -> None:
    """mosquitto_sub -c: a QoS 1 message published while it is away is delivered when
    it reconnects with the same client id."""
    topic = f"mosq/persistent/{protocol}"
    cid = f"mosq-persistent-{protocol}"
    extra = ["-c", "-i", cid] + (["-x", "60"] if protocol == 5 else [])
    spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
           "-V", mosquitto_version(protocol), "-t", topic, "-q", "1", "-E",
           *extra]).finish_ok()
    run_mosquitto_pub(spawn, broker.port, topic, 1, protocol, "-m", "queued for you")
    back = spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                  "-V", mosquitto_version(protocol), "-t", topic, "-q", "1",
                  "-C", "1", "-W", "10", "-F", "%j", *extra])
    back.finish_ok()
    assert summary(back) == [(topic, "queued for you", 1, 0)]


def test_user_properties_mqtt5(spawn: Spawn, broker) -> None:
    topic = "mosq/user-properties"
    sub = start_mosquitto_sub(spawn, broker.port, topic, 1, 5, 1)
    run_mosquitto_pub(spawn, broker.port, topic, 1, 5, "-m", "props",
                      "-D", "publish", "user-property", "colour", "blue",
                      "-D", "publish", "user-property", "size", "xl")
    sub.finish_ok()
    [msg] = mosquitto_messages(sub)
    assert (msg["topic"], msg["payload"], msg["qos"]) == (topic, "props", 1)
    assert msg["properties"]["user-properties"] == {"colour": "blue", "size": "xl"}


@PROTOCOLS
@pytest.mark.parametrize("qos", [1, 2], ids=["qos1", "qos2"])
def test_cross_family_mosquitto_pub_to_paho_and_mqttjs(
        spawn: Spawn, broker, paho: PahoFactory, mqttjs_ready, protocol: int,
        qos: int) -> None:
    topic = f"cross/from-mosquitto/{protocol}/{qos}"
    js = start_mqttjs_sub(spawn, broker.port, topic, 2, 5 if protocol == 4 else 4, 1)
    p = paho(protocol).connect()
    assert p.subscribe(topic, 2) == [2]
    extra = ["-D", "publish", "user-property", "from", "mosquitto"] if protocol == 5 else []
    run_mosquitto_pub(spawn, broker.port, topic, qos, protocol, "-m", "hello all", *extra)
    js.finish_ok()
    [jm] = mqttjs_messages(js)
    assert (jm["topic"], jm["payload"], jm["qos"], jm["retain"]) == (
        topic, "hello all", qos, False)
    m = p.expect()
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, b"hello all", qos, False)
    if protocol == 5:
        assert m.user_properties == [("from", "mosquitto")]


@PROTOCOLS
def test_shared_subscription(spawn: Spawn, broker, protocol: int) -> None:
    """Two mosquitto_sub in one $share group split the messages: each message reaches
    exactly one of them."""
    topic = f"mosq/shared/{protocol}"
    share = f"$share/group{protocol}/{topic}"
    payloads = [f"job {i}" for i in range(10)]
    subs = [spawn(mosquitto_sub_args(broker.port, share, 1, protocol, len(payloads)))
            for _ in range(2)]
    for s in subs:
        s.wait_for(lambda line: line.startswith("Subscribed"), "mosquitto_sub SUBACK")
    run_mosquitto_pub(spawn, broker.port, topic, 1, protocol, "-l",
                      stdin_text="".join(p + "\n" for p in payloads))
    deadline = time.monotonic() + 5
    while (sum(len(mosquitto_messages(s)) for s in subs) < len(payloads)
           and time.monotonic() < deadline):
        time.sleep(0.05)
    time.sleep(0.2)  # room for a wrongly duplicated delivery to show up
    got = [mosquitto_messages(s) for s in subs]
    for s in subs:
        s.kill()
    payloads_got = [m["payload"] for g in got for m in g]
    assert sorted(payloads_got) == sorted(payloads), got
    assert all(g for g in got), f"one group member got nothing: {got}"
    assert {(m["topic"], m["qos"], m["retain"]) for g in got for m in g} == {(topic, 1, 0)}
    for g in got:  # each member sees its share in publish order
        order = [int(m["payload"].split()[1]) for m in g]
        assert order == sorted(order)


def test_message_expiry_while_offline_mqtt5(spawn: Spawn, broker, paho: PahoFactory) -> None:
    """mosquitto_pub sets a Message Expiry Interval; a paho session that was offline
    gets only the unexpired message, with the interval reduced by the time it waited."""
    topic = "mosq/expiry"
    cid = "mosq-expiry-paho"
    first = paho(5, cid, clean=True, session_expiry=60).connect()
    first.subscribe(topic, 1)
    first.disconnect()
    run_mosquitto_pub(spawn, broker.port, topic, 1, 5, "-m", "short-lived",
                      "-D", "publish", "message-expiry-interval", "1")
    run_mosquitto_pub(spawn, broker.port, topic, 1, 5, "-m", "long-lived",
                      "-D", "publish", "message-expiry-interval", "30")
    time.sleep(1.3)
    got: list[tuple[bytes, int | None]] = []
    back = paho(5, cid, clean=False, session_expiry=60)
    back.client.on_message = lambda c, u, m: got.append(
        (m.payload, getattr(m.properties, "MessageExpiryInterval", None)))
    back.connect()
    assert back.session_present is True
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(got) == 1, got
    payload, remaining = got[0]
    assert payload == b"long-lived"
    assert remaining is not None and 27 <= remaining <= 29
