"""Topics starting with ``$`` are the server's (MQTT 5.0 / 3.1.1 section 4.7.2): clients
never write ``$SYS`` — not by PUBLISH at any QoS, retained or not, not by a will, not
even where an ACL grants it — except a bridge's own connection-state topic, as in
Mosquitto. Other ``$`` topics are allowed unless ``allow_dollar_topics = false``.
See roost/engine/reserved.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from roost.mqtt import Publish, ReasonCode, Will
from roost.mqtt.packets import Connack, Connect, Pubrel
from tests.broker import BrokerProcess, RawClient, online
from tests.conversations.test_connect import read_until_closed

# $SYS values every second, so a test sees the broker's own value quickly.
SYS_FAST = "[sys]\ninterval = 1\n"


@pytest.fixture(scope="module")
def sys_broker() -> Iterator[BrokerProcess]:
    with BrokerProcess(SYS_FAST) as proc:
        yield proc


@pytest.fixture(scope="module")
def strict_broker() -> Iterator[BrokerProcess]:
    with BrokerProcess("[mqtt]\nallow_dollar_topics = false\n") as proc:
        yield proc


def client(broker: BrokerProcess, level: int, client_id: str, **kw: object) -> RawClient:
    return online(lambda lv: RawClient(broker.port, lv), level, client_id, **kw)


def collect(c: RawClient, seconds: float) -> list[Publish]:
    """Every PUBLISH ``c`` receives during the next ``seconds``."""
    got: list[Publish] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            p = c.recv(left)
        except TimeoutError:
            break
        if isinstance(p, Publish):
            got.append(p)
    return got


def version_values(c: RawClient, seconds: float) -> list[bytes]:
    """Payloads of the $SYS/broker/version messages ``c`` receives in ``seconds``."""
    return [p.payload for p in collect(c, seconds) if p.topic == "$SYS/broker/version"]


def test_publish_to_sys_refused_v5(sys_broker):
    watcher = client(sys_broker, 5, "rsv-watch-5")
    watcher.subscribe("$SYS/broker/version")
    assert version_values(watcher, 1.5)  # the broker's own value, retained
    spoofer = client(sys_broker, 5, "rsv-spoof-5")
    spoofer.publish("$SYS/broker/version", b"spoofed", qos=1, retain=True, packet_id=3)
    # PUBACK, packet id 3, 0x87 Not authorized, no properties.
    assert spoofer.recv_exact(5) == b"\x40\x03\x00\x03\x87"
    spoofer.publish("$SYS/broker/version", b"spoofed", qos=2, retain=True, packet_id=4)
    assert spoofer.recv_exact(5) == b"\x50\x03\x00\x04\x87"
    # An error PUBREC ends the flow: a PUBREL for it is answered "not found".
    spoofer.send(Pubrel(4))
    assert spoofer.recv_exact(5) == b"\x70\x03\x00\x04\x92"
    spoofer.publish("$SYS/broker/uptime", b"spoofed", qos=0)
    spoofer.publish("$SYS/broker/version", b"", qos=1, retain=True, packet_id=5)
    assert spoofer.recv_exact(5) == b"\x40\x03\x00\x05\x87"
    spoofer.publish("$SYS", b"spoofed", qos=1, packet_id=6)
    assert spoofer.recv_exact(5) == b"\x40\x03\x00\x06\x87"
    assert b"spoofed" not in b"".join(version_values(watcher, 1.0))
    # A later subscriber gets the broker's value, never the spoofed one nor none.
    late = client(sys_broker, 5, "rsv-late-5")
    late.subscribe("$SYS/broker/version")
    values = version_values(late, 1.0)
    assert values and all(v.startswith(b"roost version") for v in values), values
    assert "reserved_topic" in sys_broker.log()


def test_publish_to_sys_dropped_311(sys_broker):
    watcher = client(sys_broker, 4, "rsv-watch-4")
    watcher.subscribe("$SYS/broker/uptime")
    spoofer = client(sys_broker, 4, "rsv-spoof-4")
    # 3.1.1 cannot refuse a PUBLISH: acknowledged (as for an ACL denial) and dropped.
    spoofer.publish("$SYS/broker/uptime", b"spoofed", qos=1, retain=True, packet_id=9)
    assert spoofer.recv_exact(4) == b"\x40\x02\x00\x09"
    spoofer.publish("$SYS/broker/uptime", b"spoofed", qos=0, retain=True)
    payloads = [p.payload for p in collect(watcher, 2.5)]
    assert payloads and b"spoofed" not in payloads, payloads


@pytest.mark.parametrize("level", [4, 5])
def test_will_under_sys_refused(sys_broker, level):
    c = RawClient(sys_broker.port, level)
    c.send(_connect(f"rsv-will-{level}", level, Will("$SYS/broker/clients/connected",
                                                     b"999", 0, True)))
    # 5.0: CONNACK 0x87 Not authorized; 3.1.1: return code 5 Not authorized.
    expected = b"\x20\x03\x00\x87\x00" if level == 5 else b"\x20\x02\x00\x05"
    assert read_until_closed(c) == expected


def test_acl_cannot_grant_sys(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\ntopic readwrite $SYS/#\n")
    with BrokerProcess(f'[auth]\nacl_file = "{acl}"\n') as broker:
        c = client(broker, 5, "rsv-acl")
        c.publish("$SYS/broker/x", b"x", qos=1, packet_id=1)
        assert c.recv_exact(5) == b"\x40\x03\x00\x01\x87"


@pytest.mark.parametrize("level", [4, 5])
def test_bridge_state_topic_allowed_for_its_own_client_id(sys_broker, level):
    bridge_id = f"rsv-bridge-{level}"
    state = f"$SYS/broker/connection/{bridge_id}/state"
    watcher = client(sys_broker, level, f"rsv-bwatch-{level}")
    watcher.subscribe(f"$SYS/broker/connection/{bridge_id}/#")
    # Mosquitto bridges connect with their state topic as will ("0") and publish "1".
    bridge = RawClient(sys_broker.port, level)
    bridge.send(_connect(bridge_id, level, Will(state, b"0", 1, True)))
    assert bridge.expect(Connack).reason_code == ReasonCode.SUCCESS  # type: ignore[attr-defined]
    bridge.publish(state, b"1", qos=1, retain=True, packet_id=1)
    # PUBACK success: 5.0 leaves out reason code 0x00 with no properties (3.4.2.1).
    assert bridge.recv_exact(4) == b"\x40\x02\x00\x01"
    msg = watcher.expect(Publish)
    assert (msg.topic, msg.payload) == (state, b"1")  # type: ignore[attr-defined]
    # Another client's state topic is not the bridge's to write.
    bridge.publish(f"$SYS/broker/connection/someone-else-{level}/state", b"1", qos=1,
                   packet_id=2)
    refused = b"\x40\x03\x00\x02\x87" if level == 5 else b"\x40\x02\x00\x02"
    assert bridge.recv_exact(len(refused)) == refused
    watcher.expect_nothing(0.3)
    # The bridge's will reaches the watcher when it drops.
    bridge.close()
    will = watcher.expect(Publish)
    assert (will.topic, will.payload) == (state, b"0")  # type: ignore[attr-defined]


def test_other_dollar_topics_allowed_by_default(sys_broker):
    sub = client(sys_broker, 5, "rsv-aws-sub")
    sub.subscribe("$aws/things/+/shadow")
    pub = client(sys_broker, 5, "rsv-aws-pub")
    pub.publish("$aws/things/t1/shadow", b"{}", qos=1, packet_id=1)
    assert pub.recv_exact(4) == b"\x40\x02\x00\x01"
    assert sub.expect(Publish).payload == b"{}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("level", [4, 5])
def test_other_dollar_topics_refused_when_configured(strict_broker, level):
    sub = client(strict_broker, level, f"rsv-strict-sub-{level}")
    sub.subscribe("$aws/#")
    pub = client(strict_broker, level, f"rsv-strict-pub-{level}")
    pub.publish("$aws/things/t1/shadow", b"{}", qos=1, packet_id=1)
    refused = b"\x40\x03\x00\x01\x87" if level == 5 else b"\x40\x02\x00\x01"
    assert pub.recv_exact(len(refused)) == refused
    sub.expect_nothing(0.3)
    c = RawClient(strict_broker.port, level)
    c.send(_connect(f"rsv-strict-will-{level}", level, Will("$aws/w", b"x", 0, False)))
    expected = b"\x20\x03\x00\x87\x00" if level == 5 else b"\x20\x02\x00\x05"
    assert read_until_closed(c) == expected


def _connect(client_id: str, level: int, will: Will) -> Connect:
    return Connect(client_id, level, True, 60, will=will)
