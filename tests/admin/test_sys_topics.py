"""$SYS topics of a real broker after a known workload."""

from __future__ import annotations

import time

from roost.mqtt.packets import Publish
from tests.broker import BrokerProcess, Closed, RawClient, free_port


def config(extra: str = "") -> str:
    return f'[sys]\ninterval = 1\n[http]\nbind = "127.0.0.1:{free_port()}"\n{extra}'


def collect(client: RawClient, done: object, timeout: float = 8.0) -> dict[str, str]:
    """Read $SYS publications until ``done(values)`` holds; return the latest values."""
    values: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            packet = client.recv(0.5)
        except TimeoutError:
            continue
        if isinstance(packet, Publish):
            values[packet.topic] = packet.payload.decode()
            if done(values):  # type: ignore[operator]
                return values
    raise AssertionError(f"$SYS values never matched: {values}")


def test_sys_values_after_a_known_workload() -> None:
    with BrokerProcess(config()) as broker:
        everything = RawClient(broker.port)
        everything.connect("all")
        everything.subscribe("#", 0)
        publisher = RawClient(broker.port, level=5)
        publisher.connect("pub")
        for i in range(3):
            publisher.publish("t/x", f"m{i}".encode())
        publisher.publish("r/1", b"kept", retain=True)
        # The workload is in the counters of the next update.
        watcher = RawClient(broker.port)
        watcher.connect("sys")
        watcher.subscribe("$SYS/#", 0, packet_id=2)

        def done(v: dict[str, str]) -> bool:
            return (v.get("$SYS/broker/messages/received") == "4"
                    and v.get("$SYS/broker/clients/connected") == "3"
                    and v.get("$SYS/broker/subscriptions/count") == "2"
                    # (the $SYS values themselves are not counted as retained messages)
                    and v.get("$SYS/broker/retained messages/count") == "1")

        values = collect(watcher, done)
        sys = {k.removeprefix("$SYS/broker/"): v for k, v in values.items()}
        assert sys["version"].startswith("roost version ")
        assert sys["uptime"].endswith(" seconds")
        assert sys["clients/total"] == "3"
        assert sys["clients/disconnected"] == "0"
        assert int(sys["clients/maximum"]) >= 3
        # "all" got the four messages; $SYS deliveries to "sys" count as sent too.
        assert int(sys["messages/sent"]) >= 4
        assert int(sys["bytes/received"]) > 0 and int(sys["bytes/sent"]) > 0
        assert sys["messages/stored"] == sys["store/messages/count"]
        for kind in ("messages/received", "messages/sent", "bytes/received", "bytes/sent",
                     "connections"):
            for window in ("1min", "5min", "15min"):
                float(sys[f"load/{kind}/{window}"])
        # Once traffic has been measured over an interval, the 1-minute load is positive.
        later = collect(watcher, lambda v: float(
            v.get("$SYS/broker/load/connections/1min", "0")) > 0)
        assert float(later["$SYS/broker/load/connections/1min"]) > 0

        # A "#" subscriber sees the workload but never $SYS.
        topics = []
        try:
            while True:
                packet = everything.recv(0.3)
                if isinstance(packet, Publish):
                    topics.append(packet.topic)
        except (TimeoutError, Closed):
            pass
        assert sorted(topics) == ["r/1", "t/x", "t/x", "t/x"]

        # The values are retained: a late subscriber gets them at once.
        late = RawClient(broker.port)
        late.connect("late")
        late.subscribe("$SYS/broker/version", 0)
        packet = late.expect(Publish, timeout=2)
        assert packet.retain and packet.payload.startswith(b"roost version ")  # type: ignore[attr-defined]


def test_sys_disabled_with_interval_zero() -> None:
    with BrokerProcess(f'[sys]\ninterval = 0\n[http]\nbind = "127.0.0.1:{free_port()}"\n'
                       ) as broker:
        c = RawClient(broker.port)
        c.connect("sys")
        c.subscribe("$SYS/#", 0)
        c.expect_nothing(1.5)


def test_sys_values_are_not_stored_and_come_back_after_restart() -> None:
    broker = BrokerProcess(config())
    try:
        broker.start()
        c = RawClient(broker.port)
        c.connect("sys")
        c.subscribe("$SYS/broker/uptime", 0)
        c.expect(Publish, timeout=3)
        c.close()
        broker.restart()
        assert "0 retained messages restored" in broker.log()
        c = RawClient(broker.port)
        c.connect("sys")
        c.subscribe("$SYS/broker/uptime", 0)
        c.expect(Publish, timeout=3)
    finally:
        broker.stop()
