"""The test NATS cluster itself: the pinned 2.15 binary, three servers, R3 streams,
``sync_interval: always`` as ``/jsz`` reports it, and the subject length budget."""

from __future__ import annotations

import asyncio

import nats
import nats.js.errors
from nats.js.api import StorageType, StreamConfig

from roost.cluster.natsbin import nats_server_version
from roost.cluster.subjects import MAX_SUBJECT_BYTES
from tests.cluster.nats_cluster import NatsCluster, get_json


def test_the_pinned_binary_is_2_15() -> None:
    assert nats_server_version().startswith("2.15")


def test_every_server_syncs_always_and_knows_the_cluster(
        jetstream_cluster: NatsCluster) -> None:
    for server in jetstream_cluster.servers:
        jsz = server.jsz()
        # JetStreamConfig.SyncAlways, json "sync_always,omitempty" (server/jetstream.go):
        # absent when false.
        assert jsz["config"]["sync_always"] is True
        assert jsz["meta_cluster"]["cluster_size"] == 3
        assert jsz["meta_cluster"]["leader"]
        assert get_json(server.monitor_url + "/varz")["version"].startswith("2.15")


def test_r3_stream_with_acknowledged_publishes(jetstream_cluster: NatsCluster) -> None:
    async def run() -> None:
        nc = await nats.connect(jetstream_cluster.urls, connect_timeout=5)
        try:
            js = nc.jetstream(timeout=10)
            await js.add_stream(StreamConfig(name="FIXTURE_R3", subjects=["fixture.r3.>"],
                                             num_replicas=3, storage=StorageType.FILE))
            # The new stream's interest reaches the other servers asynchronously: until
            # it does, a publish through them finds no responder.
            for _ in range(200):
                try:
                    acks = [await js.publish("fixture.r3.0", b"x")]
                    break
                except nats.js.errors.NoStreamResponseError:
                    await asyncio.sleep(0.01)
            else:
                raise AssertionError("the R3 stream never answered a publish")
            acks += [await js.publish(f"fixture.r3.{i}", b"x") for i in range(1, 10)]
            assert [a.seq for a in acks] == list(range(1, 11))
            assert {a.stream for a in acks} == {"FIXTURE_R3"}
            info = await js.stream_info("FIXTURE_R3")
            assert info.state.messages == 10
            assert info.cluster is not None and info.cluster.replicas is not None
            assert len(info.cluster.replicas) == 2  # and the leader
            await js.delete_stream("FIXTURE_R3")
        finally:
            await nc.close()

    asyncio.run(run())


def test_the_longest_subject_fits_with_reply_and_headers(
        jetstream_cluster: NatsCluster) -> None:
    """MAX_SUBJECT_BYTES leaves room on NATS's 4096-byte protocol line for the rest of an
    HPUB (a reply inbox, sizes): such a message goes through another server intact."""
    subject = "fixture.long." + "a" * (MAX_SUBJECT_BYTES - len("fixture.long."))

    async def run() -> None:
        sub_nc = await nats.connect(jetstream_cluster.urls[1])
        pub_nc = await nats.connect(jetstream_cluster.urls[0])
        try:
            sub = await sub_nc.subscribe(subject)
            await sub_nc.flush()
            reply = pub_nc.new_inbox()
            for _ in range(50):  # interest reaches other servers asynchronously
                await pub_nc.publish(subject, b"p", reply=reply, headers={"k": "v"})
                try:
                    msg = await sub.next_msg(timeout=0.2)
                    break
                except nats.errors.TimeoutError:
                    continue
            else:
                raise AssertionError("the long subject never arrived")
            assert (msg.subject, msg.reply, msg.data) == (subject, reply, b"p")
            assert msg.headers == {"k": "v"}
            assert pub_nc.is_connected
        finally:
            await sub_nc.close()
            await pub_nc.close()

    asyncio.run(run())


def test_a_subject_over_the_protocol_line_costs_the_whole_connection(
        jetstream_cluster: NatsCluster) -> None:
    """Why subjects.py refuses long topics: nats-server closes the connection ("maximum
    control line exceeded") and nats-py neither checks first nor reports an error."""
    async def run() -> None:
        nc = await nats.connect(jetstream_cluster.urls[0], allow_reconnect=False)
        await nc.publish("fixture." + "a" * 4096, b"p")
        for _ in range(100):
            if nc.is_closed:
                break
            await asyncio.sleep(0.02)
        assert nc.is_closed
        await nc.close()

    asyncio.run(run())
