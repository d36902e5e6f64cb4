"""Graceful drain on SIGTERM, against a real broker process."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request

from roost.mqtt import ReasonCode
from roost.mqtt.packets import Disconnect, Puback, Publish
from roost.mqtt.properties import Properties
from tests.broker import BrokerProcess, Closed, RawClient, free_port


def config(extra: str = "") -> tuple[str, int]:
    http = free_port()
    return (f'[http]\nbind = "127.0.0.1:{http}"\n[drain]\ngrace_period = 5\n{extra}',
            http)


def readyz(port: int) -> int:
    """/readyz's status; 404 when this build has no HTTP endpoint listening there."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:
        return 404


def test_sigterm_during_traffic_loses_nothing_acknowledged() -> None:
    text, http = config()
    broker = BrokerProcess(text)
    try:
        broker.start()
        # A persistent subscriber, offline: its QoS 1 messages queue in its session.
        sub = RawClient(broker.port, level=5)
        sub.connect("keeper", clean=False,
                    properties=Properties(session_expiry_interval=3600))
        sub.subscribe("q/#", 1)
        sub.disconnect()
        old = RawClient(broker.port, level=4)
        old.connect("old-client")

        pub = RawClient(broker.port, level=5)
        pub.connect("publisher")
        acked: set[bytes] = set()
        for i in range(1, 51):
            pub.publish("q/n", f"m{i}".encode(), qos=1, packet_id=i)
            pub.expect(Puback)
            acked.add(f"m{i}".encode())
        # More traffic in flight when the signal arrives.
        for i in range(51, 81):
            pub.publish("q/n", f"m{i}".encode(), qos=1, packet_id=i)
        if readyz(http) != 404:
            assert readyz(http) == 200
        broker.send_signal(signal.SIGTERM)
        got: list[object] = []
        try:
            while True:
                got.append(pub.recv(5))
        except Closed:
            pass
        for packet in got:
            if isinstance(packet, Puback):
                acked.add(f"m{packet.packet_id}".encode())
        disconnects = [p for p in got if isinstance(p, Disconnect)]
        assert [d.reason_code for d in disconnects] == [ReasonCode.SERVER_SHUTTING_DOWN]
        # The 3.1.1 client is closed without a packet.
        assert old.expect_closed() == []
        assert broker.wait_exit(10) == 0
        log = broker.log()
        assert log.index("drain: readiness false") < log.index("drain: 2 clients")
        assert log.index("drain: 2 clients") < log.rindex("stopped")

        broker.start()
        sub = RawClient(broker.port, level=5)
        ack = sub.connect("keeper", clean=False,
                          properties=Properties(session_expiry_interval=3600))
        assert ack.session_present
        received: set[bytes] = set()
        try:
            while True:
                packet = sub.recv(1.0)
                if isinstance(packet, Publish):
                    received.add(packet.payload)
                    sub.send(Puback(packet.packet_id))  # type: ignore[arg-type]
        except TimeoutError:
            pass
        assert acked <= received, sorted(acked - received)
        assert len(acked) >= 50
    finally:
        broker.stop()


def test_readiness_goes_false_during_the_drain() -> None:
    text, http = config()
    with BrokerProcess(text) as broker:
        if readyz(http) == 404:  # no HTTP endpoint in this build: the log shows it
            broker.send_signal(signal.SIGTERM)
            assert broker.wait_exit(10) == 0
            assert "drain: readiness false" in broker.log()
            return
        assert readyz(http) == 200
        # A client that never sends CONNECT keeps the drain waiting for a moment.
        idle = RawClient(broker.port)
        broker.send_signal(signal.SIGTERM)
        broker.wait_log("drain: readiness false")
        statuses = []
        while broker.returncode is None:
            statuses.append(readyz(http))
        # 404: the endpoint closed as the process went away.
        assert 503 in statuses and 200 not in statuses, statuses
        assert broker.wait_exit(10) == 0
        idle.close()


def test_server_reference_sends_clients_to_another_server() -> None:
    text, _ = config('server_reference = "other.example:1883"\n')
    with BrokerProcess(text) as broker:
        c = RawClient(broker.port, level=5)
        c.connect("moving")
        broker.send_signal(signal.SIGTERM)
        packet = c.expect(Disconnect)
        assert packet.reason_code == ReasonCode.USE_ANOTHER_SERVER  # type: ignore[attr-defined]
        assert packet.properties.server_reference == "other.example:1883"  # type: ignore[attr-defined]
        assert broker.wait_exit(10) == 0


def test_will_is_published_at_shutdown() -> None:
    """Documented choice (roost.admin.drain): like Mosquitto, wills are published."""
    from roost.mqtt.packets import Will

    text, _ = config()
    with BrokerProcess(text) as broker:
        watcher = RawClient(broker.port, level=5)
        watcher.connect("watcher", clean=False,
                        properties=Properties(session_expiry_interval=3600))
        watcher.subscribe("status/#", 1)
        watcher.disconnect()
        device = RawClient(broker.port, level=5)
        device.connect("device", will=Will("status/device", b"offline", 1, False,
                                            Properties()))
        broker.send_signal(signal.SIGTERM)
        assert broker.wait_exit(10) == 0
        broker.start()
        watcher = RawClient(broker.port, level=5)
        watcher.connect("watcher", clean=False,
                        properties=Properties(session_expiry_interval=3600))
        packet = watcher.expect(Publish, timeout=3)
        assert packet.payload == b"offline"  # type: ignore[attr-defined]
