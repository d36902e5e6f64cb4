"""One 3-server NATS JetStream cluster for the whole test session (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.nats_cluster import NatsCluster, nats_cluster


@pytest.fixture(scope="session")
def jetstream_cluster() -> Iterator[NatsCluster]:
    """Three routed nats-servers, R3-capable, ``sync_interval: always``; tests use their
    own stream names and subjects."""
    with nats_cluster(3) as cluster:
        yield cluster
