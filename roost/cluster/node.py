"""A node's cluster side, as ``roost.app`` starts and stops it.

``ClusterNode(config, settings)`` makes the router the engine is built with; ``start``
connects to NATS, runs the start-up checks and logs what they find; ``run`` starts the
backplane's tasks in the node's task group; ``cancel`` and ``close`` end them and drain
the connections. ``ready`` is false while NATS is not reachable. Loaded only in cluster
mode, so the embedded broker never imports the NATS client.
"""

from __future__ import annotations

import asyncio
import logging

from roost.cluster.backplane import NatsBackplane
from roost.cluster.preflight import check_jetstream
from roost.cluster.retained import NodeRetained
from roost.cluster.router import ClusterRouter, ClusterStats
from roost.config import ClusterConfig
from roost.engine.engine import Engine
from roost.engine.settings import EngineSettings

log = logging.getLogger("roost.cluster")


class ClusterNode:
    def __init__(self, config: ClusterConfig, settings: EngineSettings) -> None:
        self.config = config
        self.settings = settings
        self.stats = ClusterStats()
        self.backplane = NatsBackplane(config, self.stats)
        self.router = ClusterRouter(self.backplane.prefix, self.backplane, stats=self.stats)

    @property
    def ready(self) -> bool:
        """Whether the node can reach the other nodes (both NATS connections up)."""
        return self.backplane.connected

    async def start(self, engine: Engine) -> None:
        """Join the cluster with ``engine`` (built with ``self.router``), before the
        node takes clients: waits until NATS is reachable."""
        # Before any client: retained messages stay per node for now (retained.py).
        engine.retained = NodeRetained(engine.retained)
        await self.backplane.start(engine)
        problems = await check_jetstream(self.backplane.main, self.config.monitor_urls,
                                         max_payload=self.settings.max_packet_size)
        for problem in problems:
            log.warning("cluster preflight: %s", problem)
        if not problems:
            log.info("cluster preflight: NATS and JetStream are fit for the cluster")
        log.warning("cluster mode is live routing only for now: messages cross nodes at "
                    "most once (QoS 1 and 2 included), sessions and retained messages "
                    "stay on their node (docs/cluster.md, What works today)")

    def run(self, tasks: asyncio.TaskGroup) -> None:
        self.backplane.run(tasks)

    def cancel(self) -> None:
        self.backplane.cancel()

    async def close(self) -> None:
        await self.backplane.close()
