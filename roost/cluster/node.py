"""A node's cluster side, as ``roost.app`` starts and stops it.

``ClusterNode(config, settings)`` makes the router the engine is built with; ``start``
connects to NATS, runs the start-up checks and logs what they find; ``run`` starts the
backplane's tasks in the node's task group; ``cancel`` and ``close`` end them and drain
the connections. ``ready`` is false while NATS is not reachable. Loaded only in cluster
mode, so the embedded broker never imports the NATS client.

Retained messages live in the cluster's retained stream (``roost.cluster.retained``):
``start`` creates or checks it and loads the index before the node takes clients, and
makes the store's ``commit`` also wait for the stream's acknowledgement of the retained
messages published so far, so a retained QoS 1/2 message is acknowledged (PUBACK,
PUBREC) only once the stream holds it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from roost.cluster.backplane import NatsBackplane
from roost.cluster.preflight import check_jetstream
from roost.cluster.retained import ClusterRetained
from roost.cluster.router import ClusterRouter, ClusterStats
from roost.config import ClusterConfig
from roost.engine.engine import Engine
from roost.engine.settings import EngineSettings
from roost.engine.store import Store

log = logging.getLogger("roost.cluster")


class ClusterNode:
    def __init__(self, config: ClusterConfig, settings: EngineSettings) -> None:
        self.config = config
        self.settings = settings
        self.stats = ClusterStats()
        self.backplane = NatsBackplane(config, self.stats)
        self.router = ClusterRouter(self.backplane.prefix, self.backplane, stats=self.stats)
        self.retained: ClusterRetained | None = None

    @property
    def ready(self) -> bool:
        """Whether the node can reach the other nodes (both NATS connections up)."""
        return self.backplane.connected

    async def start(self, engine: Engine) -> None:
        """Join the cluster with ``engine`` (built with ``self.router``), before the
        node takes clients: waits until NATS is reachable."""
        await self.backplane.start(engine)
        problems = await check_jetstream(self.backplane.main, self.config.monitor_urls,
                                         max_payload=self.settings.max_packet_size)
        for problem in problems:
            log.warning("cluster preflight: %s", problem)
        if not problems:
            log.info("cluster preflight: NATS and JetStream are fit for the cluster")
        # Before any client: the retained stream replaces the node's own retained
        # messages. The groups connection has echo, so this node's consumer surely gets
        # its own writes back too.
        retained = ClusterRetained(self.backplane.groups, self.config.name, engine.clock,
                                   self.config.replicas)
        engine.retained = self.retained = retained
        try:
            await retained.start()
        except Exception as exc:
            log.warning("cluster: the retained stream is not available (%r): retained "
                        "messages stay on this node, in memory", exc)
        else:
            engine.store = cast(Store, FlushingStore(engine.store, retained))
        log.warning("cluster mode is live routing only for now: messages cross nodes at "
                    "most once (QoS 1 and 2 included), sessions stay on their node "
                    "(docs/cluster.md, What works today)")

    def run(self, tasks: asyncio.TaskGroup) -> None:
        self.backplane.run(tasks)

    def cancel(self) -> None:
        self.backplane.cancel()

    async def close(self) -> None:
        if self.retained is not None:
            await self.retained.stop()
        await self.backplane.close()


class FlushingStore:
    """The node's store, whose ``commit`` also waits for the retained stream to
    acknowledge every retained message published before the commit calls back."""

    def __init__(self, inner: Store, retained: ClusterRetained) -> None:
        self._inner = inner
        self._retained = retained

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def commit(self, callback: Callable[[bool], None]) -> None:
        flushed = self._retained.flushed
        self._inner.commit(lambda ok: flushed(lambda acked: callback(ok and acked)))
