"""Preflight against real servers: the test cluster passes; a lone server, one without
sync always or without JetStream, unreachable or missing monitoring, and a too small
max_payload are each reported in words."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats

from roost.cluster.preflight import check_jetstream
from tests.cluster.nats_cluster import NatsCluster, free_ports, nats_cluster


def preflight(url: str, monitor_urls: Sequence[str], **kwargs: int) -> list[str]:
    async def run() -> list[str]:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            return await check_jetstream(nc, monitor_urls, timeout=2.0, **kwargs)
        finally:
            await nc.close()

    return asyncio.run(run())


def test_the_test_cluster_passes(jetstream_cluster: NatsCluster) -> None:
    assert preflight(jetstream_cluster.urls[0], jetstream_cluster.monitor_urls,
                     max_payload=1024 * 1024) == []


def test_a_lone_server_without_sync_always() -> None:
    with nats_cluster(1, sync_always=False) as lone:
        problems = preflight(lone.urls[0], lone.monitor_urls)
    url = lone.monitor_urls[0]
    assert problems == [
        f"JetStream on nats-server n1 ({url}) does not run with sync_interval: always "
        "(/jsz config.sync_always is false): acknowledged messages could be lost on power "
        "failure",
        f"JetStream on nats-server n1 ({url}) is not clustered: R3 needs a cluster of at "
        "least 3 servers",
    ]


def test_a_server_without_jetstream() -> None:
    with nats_cluster(1, jetstream=False) as lone:
        problems = preflight(lone.urls[0], lone.monitor_urls)
    assert problems == [
        f"JetStream does not answer through {lone.urls[0]} (no responders): it is not "
        "enabled on that server or for this account",
        f"JetStream is not enabled on nats-server n1 ({lone.monitor_urls[0]}) (/jsz)",
    ]


def test_servers_left_unmonitored_are_named(jetstream_cluster: NatsCluster) -> None:
    problems = preflight(jetstream_cluster.urls[0], jetstream_cluster.monitor_urls[:2])
    assert problems == ["nats-server(s) n3 are in the JetStream cluster but no monitoring "
                        "URL given reaches them: their sync setting is unchecked"]


def test_monitoring_unreachable_or_missing(jetstream_cluster: NatsCluster) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    problems = preflight(jetstream_cluster.urls[0], [*jetstream_cluster.monitor_urls, dead])
    assert len(problems) == 1
    assert problems[0].startswith(f"cannot read the NATS monitoring endpoint {dead}: ")
    assert preflight(jetstream_cluster.urls[0], []) == [
        "no NATS monitoring URL given: sync_interval and the cluster size cannot be checked"]


def test_a_payload_limit_below_roosts_packet_limit(jetstream_cluster: NatsCluster) -> None:
    problems = preflight(jetstream_cluster.urls[0], jetstream_cluster.monitor_urls,
                         max_payload=4 * 1024 * 1024)
    assert problems == [
        "NATS accepts payloads up to 1048576 bytes, Roost's packet limit is 4194304: raise "
        "max_payload in the NATS configuration or lower Roost's maximum packet size"]


def test_a_cluster_smaller_than_the_replicas(jetstream_cluster: NatsCluster) -> None:
    problems = preflight(jetstream_cluster.urls[0], jetstream_cluster.monitor_urls,
                         replicas=5)
    assert len(problems) == 3
    assert all("'roost-test' has 3 server(s)" in p and "R5 needs at least 5" in p
               for p in problems)
