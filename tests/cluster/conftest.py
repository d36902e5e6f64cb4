"""One 3-server NATS JetStream cluster for the whole test session (started on first use),
and clients on the nodes of a module's ``nodes`` fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from roost.mqtt import ReasonCode
from tests.broker import BrokerProcess, RawClient
from tests.cluster.nats_cluster import NatsCluster, nats_cluster


@pytest.fixture(scope="session")
def jetstream_cluster() -> Iterator[NatsCluster]:
    """Three routed nats-servers, R3-capable, ``sync_interval: always``; tests use their
    own stream names and subjects."""
    with nats_cluster(3) as cluster:
        yield cluster


@pytest.fixture
def on(nodes: list[BrokerProcess]) -> Iterator[Callable[..., RawClient]]:
    """``on(node, client_id, level=5)``: a client connected to node 1, 2 or 3 of the
    module's ``nodes`` fixture; closed afterwards."""
    made: list[RawClient] = []

    def connect(node: int, client_id: str, level: int = 5) -> RawClient:
        client = RawClient(nodes[node - 1].port, level)
        assert client.connect(client_id).reason_code == ReasonCode.SUCCESS
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()
