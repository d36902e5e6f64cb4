"""Real ``roost serve`` nodes in cluster mode, each on its own server of a NATS cluster,
and helpers to talk MQTT to them across nodes."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

from roost.mqtt.packets import Puback, Publish
from tests.broker import BrokerProcess, Closed, RawClient
from tests.cluster.nats_cluster import NatsCluster, get_json


def node_config(nats: NatsCluster, index: int, name: str = "roost") -> str:
    """[cluster] for node ``index`` (from 0): connected to NATS server ``index``."""
    url = nats.urls[index % len(nats.urls)]
    monitors = ", ".join(json.dumps(u) for u in nats.monitor_urls)
    return (f'[cluster]\nurls = ["{url}"]\nname = "{name}"\nnode_id = "node-{index + 1}"\n'
            f"monitor_urls = [{monitors}]\n")


@contextlib.contextmanager
def cluster_nodes(nats: NatsCluster, count: int, name: str = "roost"
                  ) -> Iterator[list[BrokerProcess]]:
    """``count`` nodes started together; stopped (SIGTERM) afterwards."""
    nodes = [BrokerProcess(node_config(nats, i, name)) for i in range(count)]
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.start_wait()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def nats_subjects(nats: NatsCluster, index: int, connection_name: str) -> set[str]:
    """The subjects that the NATS connection named ``connection_name`` on server
    ``index`` subscribes to (its ``/connz`` entry)."""
    connz = get_json(nats.monitor_urls[index] + "/connz?subs=1")
    return {sub for conn in connz.get("connections") or []
            if conn.get("name") == connection_name
            for sub in conn.get("subscriptions_list") or []}


def receive(client: RawClient, count: int, timeout: float = 5.0,
            skip: bytes = b"probe") -> list[Publish]:
    """The next ``count`` PUBLISHes (acknowledging QoS 1 ones), probes left out."""
    got: list[Publish] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        packet = client.recv(max(0.01, deadline - time.monotonic()))
        if isinstance(packet, Publish):
            if packet.qos == 1:
                assert packet.packet_id is not None
                client.send(Puback(packet.packet_id))
            if packet.payload != skip:
                got.append(packet)
    return got


def settle(*clients: RawClient, wait: float = 0.3, skip: bytes = b"probe") -> None:
    """Read what ``clients`` get for ``wait`` seconds; anything but a probe is an
    error."""
    deadline = time.monotonic() + wait
    for client in clients:
        while True:
            try:
                # Past the deadline, what is already there is still read.
                packet = client.recv(max(0.01, deadline - time.monotonic()))
            except (TimeoutError, Closed):
                break
            assert isinstance(packet, Publish) and packet.payload == skip, packet
        client.sock.settimeout(5.0)


def routed(publisher: RawClient, topic: str, *subscribers: RawClient,
           timeout: float = 10.0) -> None:
    """Publish probes to ``topic`` until each subscriber got one: their nodes' interest
    has reached the publisher's NATS server (it does so asynchronously). Leaves the
    stragglers read."""
    waiting = list(subscribers)
    deadline = time.monotonic() + timeout
    while waiting:
        assert time.monotonic() < deadline, f"no probe on {topic!r} reached {waiting}"
        publisher.publish(topic, b"probe")
        for client in list(waiting):
            try:
                packet = client.recv(0.05)
            except TimeoutError:
                continue
            if isinstance(packet, Publish) and packet.payload == b"probe":
                waiting.remove(client)
        for client in subscribers:
            client.sock.settimeout(5.0)
    settle(*subscribers, wait=0.2)
