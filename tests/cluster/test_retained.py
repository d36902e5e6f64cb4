"""ClusterRetained against the real 3-server JetStream cluster: two instances (two
"nodes", each on its own server) share retained messages through the stream."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import nats
import pytest
from nats.aio.client import Client

from roost.app import AsyncioClock
from roost.cluster.node import FlushingStore
from roost.cluster.retained import ClusterRetained, stream_name
from roost.config import ConfigError, from_dict
from roost.engine.engine import Engine
from roost.engine.hooks import AnonymousPolicy
from roost.engine.message import Message, Origin
from roost.engine.settings import EngineSettings
from roost.engine.store import Store
from roost.mqtt import Properties, Publish, ReasonCode
from roost.mqtt.packets import Puback
from tests.cluster.nats_cluster import NatsCluster
from tests.engine.memory import MemoryClient

_names = itertools.count()


@asynccontextmanager
async def two_nodes(nats_cluster: NatsCluster, replicas: int = 3
                    ) -> AsyncIterator[tuple[ClusterRetained, ClusterRetained]]:
    cluster = f"rt{next(_names)}"
    clients: list[Client] = []
    made: list[ClusterRetained] = []
    clock = AsyncioClock(asyncio.get_running_loop())
    try:
        for url in nats_cluster.urls[:2]:
            nc = await nats.connect(url)
            clients.append(nc)
            retained = ClusterRetained(nc, cluster, clock, replicas)
            await retained.start()
            made.append(retained)
        yield made[0], made[1]
    finally:
        for retained in made:
            await retained.stop()
        if clients:
            await clients[0].jetstream().delete_stream(stream_name(cluster))
        for nc in clients:
            await nc.close()


def run(nats_cluster: NatsCluster,
        test: Callable[[ClusterRetained, ClusterRetained], Awaitable[None]]) -> None:
    async def main() -> None:
        async with two_nodes(nats_cluster) as (a, b):
            await test(a, b)

    asyncio.run(main())


def msg(topic: str, payload: bytes, qos: int = 1, expires_at: float | None = None,
        origin_kind: Origin = Origin.CLIENT) -> Message:
    return Message(topic, payload, qos, True, origin="c", expires_at=expires_at,
                   origin_kind=origin_kind)


def payloads(retained: ClusterRetained, topic_filter: str) -> list[bytes]:
    now = asyncio.get_running_loop().time()
    return sorted(m.payload for m in retained.matching(topic_filter, now))


async def flushed(retained: ClusterRetained) -> bool:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    retained.flushed(future.set_result)
    return await asyncio.wait_for(future, 5)


async def current(retained: ClusterRetained) -> bool:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    retained.when_current(future.set_result)
    return await asyncio.wait_for(future, 5)


def test_an_update_on_one_node_reaches_the_others_index(
        jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        a.update(msg("r/1", b"one"))
        assert payloads(a, "r/#") == [b"one"]  # the writer's index at once
        assert await flushed(a)
        assert await current(b)
        assert payloads(b, "r/#") == [b"one"]
        assert (a.count, b.count) == (1, 1)
        got = next(b.matching("r/1", 0))
        assert (got.qos, got.retain, got.origin) == (1, True, "c")

    run(jetstream_cluster, test)


def test_an_empty_payload_deletes_everywhere(jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        a.update(msg("d/x", b"x"))
        a.update(msg("d/y", b"y"))
        assert await flushed(a) and await current(b)
        assert payloads(b, "d/+") == [b"x", b"y"]
        b.update(msg("d/x", b""))
        assert payloads(b, "d/+") == [b"y"]
        assert await flushed(b) and await current(a)
        assert payloads(a, "d/+") == [b"y"]
        assert (a.count, b.count) == (1, 1)

    run(jetstream_cluster, test)


def test_when_current_waits_for_an_update_published_just_before(
        jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        for i in range(30):
            a.update(msg("rw/t", b"%d" % i))
            assert await flushed(a)  # as a PUBACK would
            assert await current(b)  # right away, as a SUBSCRIBE would
            assert payloads(b, "rw/t") == [b"%d" % i]

    run(jetstream_cluster, test)


def test_the_writer_never_goes_back_to_an_older_value(
        jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        seen = []
        for i in range(50):
            a.update(msg("ord/t", b"%03d" % i))
            seen.append(payloads(a, "ord/t"))
            await asyncio.sleep(0)
        assert seen == [[b"%03d" % i] for i in range(50)]
        assert await flushed(a) and await current(a) and await current(b)
        assert payloads(a, "ord/t") == payloads(b, "ord/t") == [b"049"]

    run(jetstream_cluster, test)


def test_concurrent_writers_agree_on_the_stream_order(
        jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        for i in range(20):
            a.update(msg("both/t", b"a%d" % i))
            b.update(msg("both/t", b"b%d" % i))
        assert await flushed(a) and await flushed(b)
        assert await current(a) and await current(b)
        assert payloads(a, "both/t") == payloads(b, "both/t")

    run(jetstream_cluster, test)


def test_expiry_is_a_deadline_carried_with_the_message(
        jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        now = asyncio.get_running_loop().time()
        a.update(msg("exp/short", b"s", expires_at=now + 0.5))
        a.update(msg("exp/long", b"l", expires_at=now + 100))
        assert await flushed(a) and await current(b)
        got = {m.topic: m.expires_at for m in b.matching("exp/#", now)}
        assert got.keys() == {"exp/short", "exp/long"}
        assert abs((got["exp/short"] or 0) - (now + 0.5)) < 0.1
        await asyncio.sleep(0.6)
        assert payloads(b, "exp/#") == [b"l"]
        assert b.count == 1

    run(jetstream_cluster, test)


def test_sys_values_and_remote_copies_stay_out_of_the_stream(
        jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        a.update(msg("$SYS/broker/uptime", b"1", origin_kind=Origin.SYS), persist=False)
        a.update(msg("rem/t", b"remote", origin_kind=Origin.REMOTE))
        a.update(msg("mark/t", b"m"))
        assert await flushed(a) and await current(b)
        assert payloads(a, "$SYS/#") == [b"1"] and payloads(b, "$SYS/#") == []
        assert payloads(a, "rem/#") == payloads(b, "rem/#") == []
        assert payloads(b, "mark/t") == [b"m"]
        info = await a.js.stream_info(a.stream)
        assert info.state.messages == 2  # mark/t and the start probe

    run(jetstream_cluster, test)


def test_a_node_started_later_loads_the_stream(jetstream_cluster: NatsCluster) -> None:
    async def main() -> None:
        async with two_nodes(jetstream_cluster) as (a, _):
            for i in range(100):
                a.update(msg(f"late/{i}", b"%d" % i))
            a.update(msg("late/5", b""))
            assert await flushed(a)
            nc = await nats.connect(jetstream_cluster.urls[2])
            c = ClusterRetained(nc, a.stream.split("_")[1], a.clock)
            try:
                await c.start()  # returns once the index has caught up
                assert c.count == 99 and payloads(c, "late/7") == [b"7"]
            finally:
                await c.stop()
                await nc.close()

    asyncio.run(main())


def test_flushed_says_when_the_stream_did_not_take_a_message(
        jetstream_cluster: NatsCluster) -> None:
    async def main() -> None:
        async with two_nodes(jetstream_cluster) as (a, _):
            assert await flushed(a)  # nothing waiting
            a.update(msg("gone/t", b"before"))
            assert await flushed(a)
            await a.js.delete_stream(a.stream)
            a.update(msg("gone/t", b"lost"))
            assert not await flushed(a)
            assert a.failed == 1
            await a.js.add_stream(name=a.stream, subjects=[f"{a.prefix}.>"],
                                  max_msgs_per_subject=1)  # for two_nodes' clean-up

    asyncio.run(main())


def test_a_retained_puback_waits_for_the_stream(jetstream_cluster: NatsCluster) -> None:
    async def main() -> None:
        async with two_nodes(jetstream_cluster) as (a, b):
            engine = Engine(a.clock, EngineSettings(), retained=a,
                            authenticators=[AnonymousPolicy({"default": True}, True)])
            engine.store = cast(Store, FlushingStore(engine.store, a))
            client = MemoryClient(engine, 5)
            client.connect("pub")
            client.take()
            client.send(Publish("ack/t", b"v", 1, True, False, 1, Properties()))
            assert client.take() == []  # not before the stream has it
            assert await flushed(a)
            [ack] = client.take()
            assert isinstance(ack, Puback) and ack.packet_id == 1
            assert not ack.reason_code.is_error  # 0x10: no subscriber on this engine
            assert await current(b) and payloads(b, "ack/t") == [b"v"]
            client.send(Publish("plain/t", b"v", 1, False, False, 2, Properties()))
            [ack] = client.take()  # no retained message waiting: at once
            assert isinstance(ack, Puback) and ack.packet_id == 2

            await a.js.delete_stream(a.stream)
            client.send(Publish("ack/t", b"lost", 1, True, False, 3, Properties()))
            assert not await flushed(a)
            [ack] = client.take()
            assert isinstance(ack, Puback)
            assert ack.reason_code == ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
            await a.js.add_stream(name=a.stream, subjects=[f"{a.prefix}.>"],
                                  max_msgs_per_subject=1)  # for two_nodes' clean-up

    asyncio.run(main())


def test_a_refused_write_gives_way_to_the_streams_value(
        jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        a.update(msg("big/t", b"small"))
        assert await flushed(a)
        too_big = b"x" * (a.nc.max_payload + 1)
        a.update(msg("big/t", too_big))  # NATS refuses it
        a.update(msg("big/new", too_big))
        assert payloads(a, "big/t") == [too_big]  # for now
        assert not await flushed(a)
        for _ in range(100):
            if payloads(a, "big/#") == [b"small"]:
                break
            await asyncio.sleep(0.01)
        assert payloads(a, "big/#") == [b"small"]  # back to what the stream holds
        assert a.count == 1
        assert await current(b) and payloads(b, "big/#") == [b"small"]

    run(jetstream_cluster, test)


def test_subscribes_at_once_share_one_stream_read(jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        reads = 0
        stream_info = b.js.stream_info

        async def counted(name: str, subjects_filter: str | None = None) -> Any:
            nonlocal reads
            reads += 1
            return await stream_info(name, subjects_filter)

        b.js.stream_info = counted  # type: ignore[method-assign]
        a.update(msg("many/t", b"v"))
        assert await flushed(a)
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(50)]
        for future in futures:
            b.when_current(future.set_result)
        assert await asyncio.wait_for(asyncio.gather(*futures), 5) == [True] * 50
        assert reads == 1
        assert payloads(b, "many/t") == [b"v"]
        late: asyncio.Future[bool] = loop.create_future()
        b.when_current(late.set_result)  # after the round: a read of its own
        assert await late and reads == 2

    run(jetstream_cluster, test)


def test_replicas_are_configurable() -> None:
    cluster = {"urls": ["nats://127.0.0.1:4222"]}
    config = from_dict({"cluster": {**cluster, "replicas": 1}}).cluster
    assert config is not None and config.replicas == 1
    assert from_dict({"cluster": cluster}).cluster.replicas == 3  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="cluster.replicas"):
        from_dict({"cluster": {**cluster, "replicas": 0}})


def test_a_stream_that_is_not_roosts_is_refused(jetstream_cluster: NatsCluster) -> None:
    async def main() -> None:
        nc = await nats.connect(jetstream_cluster.urls[0])
        js = nc.jetstream()
        retained = ClusterRetained(nc, "foreign", AsyncioClock(asyncio.get_running_loop()))
        await js.add_stream(name=retained.stream, subjects=[f"{retained.prefix}.>"])
        try:
            with pytest.raises(RuntimeError, match="max_msgs_per_subject -1"):
                await retained.start()
            assert not retained.active
        finally:
            await js.delete_stream(retained.stream)
            await nc.close()

    asyncio.run(main())


def test_a_subscribe_waits_for_a_newer_value_held_behind_the_nodes_own_write(
        jetstream_cluster: NatsCluster) -> None:
    async def test(a: ClusterRetained, b: ClusterRetained) -> None:
        loop = asyncio.get_running_loop()
        answered = b._answered

        def slow(*args: Any) -> None:  # b learns of its acknowledgements late
            loop.call_later(0.3, answered, *args)

        b._answered = slow  # type: ignore[method-assign]
        b.update(msg("held/t", b"from b"))  # first in the stream...
        await asyncio.sleep(0.05)
        a.update(msg("held/t", b"from a"))  # ...then this one, acknowledged
        assert await flushed(a)
        assert await current(b)
        assert payloads(b, "held/t") == [b"from a"]
        assert await current(a) and payloads(a, "held/t") == [b"from a"]

    run(jetstream_cluster, test)
