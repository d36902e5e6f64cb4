"""/metrics on a real broker: counters move by the right amounts under traffic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from roost.mqtt import ReasonCode
from roost.mqtt.packets import Puback, Publish
from tests.admin.helpers import http, scrape, value
from tests.broker import BrokerProcess, RawClient


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess("[mqtt]\nmax_topic_levels = 8\n", http_port=0) as proc:
        yield proc


def online(broker: BrokerProcess, client_id: str, level: int = 4, **kw: object) -> RawClient:
    c = RawClient(broker.port, level)
    assert c.connect(client_id, **kw).reason_code == ReasonCode.SUCCESS  # type: ignore[arg-type]
    return c


def test_exposition_format_and_process_metrics(broker):
    status, ctype, body = http(broker, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert "# TYPE roost_messages_received_total counter" in text
    assert "# TYPE roost_connections gauge" in text
    samples = scrape(broker)
    assert value(samples, "roost_ready") == 1
    assert value(samples, "process_resident_memory_bytes") > 0
    assert ("process_cpu_seconds_total", ()) in samples


def test_publish_counters_move_by_the_right_amounts(broker):
    # Persistent, so its QoS 1 deliveries are stored and their PUBACKs wait for commits.
    sub1 = online(broker, "m-sub1", clean=False)
    sub1.subscribe("metrics/t/#", qos=1)
    sub0 = online(broker, "m-sub0")
    sub0.subscribe("metrics/t/+", qos=0)
    pub = online(broker, "m-pub")
    before = scrape(broker)

    payload = b"x" * 100
    for i in range(1, 11):
        pub.publish("metrics/t/a", payload, qos=1, packet_id=i)
        assert pub.expect(Puback).packet_id == i  # type: ignore[attr-defined]
    for n in range(10):
        p = sub1.expect(Publish)
        assert p.qos == 1  # type: ignore[attr-defined]
        sub1.send(Puback(p.packet_id))  # type: ignore[attr-defined]
        assert sub0.expect(Publish).qos == 0, n  # type: ignore[attr-defined]
    sub1.expect_nothing(0.2)

    after = scrape(broker)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("roost_messages_received_total", qos="1") == 10
    assert moved("roost_messages_received_total", qos="0") == 0
    assert moved("roost_messages_sent_total", qos="1") == 10
    assert moved("roost_messages_sent_total", qos="0") == 10
    assert moved("roost_bytes_received_total") >= 10 * 100
    assert moved("roost_bytes_sent_total") >= 20 * 100
    assert value(after, "roost_connections") >= 3
    assert value(after, "roost_listener_connections", listener="default") >= 3
    assert value(after, "roost_sessions", state="online") >= 3
    assert value(after, "roost_subscriptions") >= 2
    assert value(after, "roost_inflight_messages") == 0
    # QoS 1 PUBLISH stored for a persistent subscriber is acknowledged after a commit.
    assert moved("roost_store_commits_total") >= 1
    assert moved("roost_store_commit_seconds_count") == moved("roost_store_commits_total")
    assert ("roost_store_last_batch_size", ()) in after
    assert value(after, "roost_store_healthy") == 1
    for c in (sub1, sub0, pub):
        c.disconnect()
    online(broker, "m-sub1").disconnect()  # clean session: discard the persistent one


def test_sessions_queue_and_retained(broker):
    persistent = online(broker, "m-offline", level=4, clean=False)
    persistent.subscribe("metrics/q", qos=1)
    persistent.disconnect()
    pub = online(broker, "m-pub2")
    before = scrape(broker)
    for i in range(1, 4):
        pub.publish("metrics/q", b"queued", qos=1, packet_id=i)
        pub.expect(Puback)
    pub.publish("metrics/retained/one", b"kept", retain=True)
    pub.disconnect()
    after = scrape(broker)
    assert value(after, "roost_sessions", state="offline") >= 1
    assert value(after, "roost_queued_messages") - value(before, "roost_queued_messages") == 3
    assert value(after, "roost_retained_messages") - \
        value(before, "roost_retained_messages") == 1


def test_protocol_error_and_limit_counters(broker):
    before = scrape(broker)
    c = RawClient(broker.port)
    c.send_raw(b"GET / HTTP/1.1\r\n\r\n")
    c.expect_closed()
    after = scrape(broker)
    assert value(after, "roost_protocol_errors_total") - \
        value(before, "roost_protocol_errors_total") == 1
    assert value(after, "roost_connections_total") - \
        value(before, "roost_connections_total") == 1

    c = online(broker, "m-deep", level=5)
    c.publish("/".join("l" * 10), b"too deep")
    c.expect_closed()
    again = scrape(broker)
    assert value(again, "roost_limit_breaches_total", limit="max_topic_levels") - \
        value(after, "roost_limit_breaches_total", limit="max_topic_levels") == 1
