"""Retained read-your-writes across two real nodes (cluster.md §1.5, a short F8): a
retained PUBLISH acknowledged on node 1 is what a SUBSCRIBE on node 2 gets right after."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

import pytest

from roost.mqtt import ReasonCode
from roost.mqtt.packets import Puback, Publish
from tests.broker import BrokerProcess, RawClient
from tests.cluster.nats_cluster import NatsCluster
from tests.cluster.nodes import cluster_nodes


@pytest.fixture(scope="module")
def nodes(jetstream_cluster: NatsCluster) -> Iterator[list[BrokerProcess]]:
    with cluster_nodes(jetstream_cluster, 2, name="rtnodes") as started:
        yield started


def retained_publish(client: RawClient, topic: str, payload: bytes, packet_id: int) -> None:
    client.publish(topic, payload, 1, retain=True, packet_id=packet_id)
    ack = client.expect(Puback)
    assert (ack.packet_id, ack.reason_code) == (packet_id, ReasonCode.SUCCESS)  # type: ignore[attr-defined]


def retained_on_subscribe(client: RawClient, topic_filter: str) -> list[bytes]:
    """What a fresh SUBSCRIBE gets as retained messages (read until 0.3 s of quiet)."""
    client.subscribe(topic_filter, 1)
    got = []
    while True:
        try:
            packet = client.recv(0.3)
        except TimeoutError:
            return got
        assert isinstance(packet, Publish) and packet.retain
        got.append(packet.payload)
        if packet.qos == 1:
            assert packet.packet_id is not None
            client.send(Puback(packet.packet_id))


def test_nodes_use_the_retained_stream(nodes: list[BrokerProcess]) -> None:
    for node in nodes:
        log = node.log()
        assert "retained stream ROOST_rtnodes_RETAINED" in log
        assert "retained stream is not available" not in log


def test_a_subscribe_on_another_node_right_after_the_puback_gets_that_value(
        on: Callable[..., RawClient]) -> None:
    pub = on(1, "ryw-pub")
    rng = random.Random(8)
    for i in range(20):
        payload = b"value-%d" % i
        retained_publish(pub, "ryw/t", payload, i + 1)
        time.sleep(rng.uniform(0, 0.05))
        sub = on(2, f"ryw-sub-{i}")
        assert retained_on_subscribe(sub, "ryw/t") == [payload], i
        sub.close()


def test_a_retained_delete_on_one_node_reaches_new_subscribers_on_another(
        on: Callable[..., RawClient]) -> None:
    pub = on(1, "del-pub")
    retained_publish(pub, "del/t", b"there", 1)
    assert retained_on_subscribe(on(2, "del-sub-1"), "del/#") == [b"there"]
    retained_publish(pub, "del/t", b"", 2)
    assert retained_on_subscribe(on(2, "del-sub-2"), "del/#") == []
    assert retained_on_subscribe(on(1, "del-sub-3"), "del/#") == []


def test_the_writing_node_sees_its_own_write_at_once(on: Callable[..., RawClient]) -> None:
    pub = on(2, "own-pub")
    for i in range(5):
        retained_publish(pub, "own/t", b"%d" % i, i + 1)
        assert retained_on_subscribe(on(2, f"own-sub-{i}"), "own/t") == [b"%d" % i]
