"""Core NATS in one process, for testing the cluster router without servers.

``MemoryNats`` holds the ``MemoryBus`` of each node and delivers the way NATS does for
the backplane: one copy per matching subscription; plain subscriptions never get their
own node's messages (``no_echo``); each queue group gets one copy for the whole network,
to its members in turn, this node's included. Messages cross through the real header
codec. Delivery is synchronous.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from roost.cluster.codec import headers_for, message_from, source_on
from roost.cluster.router import ClusterRouter, Feed
from roost.cluster.subjects import subject_to_topic
from roost.engine.engine import Engine
from roost.engine.message import Message
from roost.engine.router import LocalRouter
from roost.engine.subscriptions import Subscriber
from tests.cluster.test_subjects import nats_matches

PREFIX = "roost.test.msg"


class MemoryNats:
    def __init__(self) -> None:
        self.buses: list[MemoryBus] = []
        self._turn = itertools.count()

    def publish(self, sender: MemoryBus, subject: str, message: Message,
                source: Subscriber | None) -> int:
        headers = headers_for(message, 0.0,
                              (sender.node_id, source.key) if source is not None else None)
        count = 0
        groups: dict[str, list[tuple[MemoryBus, Feed]]] = {}
        for bus in self.buses:
            if not bus.connected:
                continue
            for feed in list(bus.feeds):
                if not any(nats_matches(s, subject) for s in feed.subjects):
                    continue
                if feed.queue:
                    groups.setdefault(feed.queue, []).append((bus, feed))
                elif bus is not sender:
                    count += bus.arrive(subject, headers, message.payload, feed)
        for members in groups.values():
            bus, feed = members[next(self._turn) % len(members)]
            count += bus.arrive(subject, headers, message.payload, feed)
        return count


class MemoryBus:
    """One node's ``Bus``; ``receive`` is what the backplane calls for each arrival
    (``Engine.publish``, or ``Router.route`` alone)."""

    def __init__(self, network: MemoryNats, node_id: str) -> None:
        self.network = network
        self.node_id = node_id
        self.connected = True
        self.feeds: list[Feed] = []
        self.receive: Callable[[Message, Feed], int] = lambda message, feed: 0
        network.buses.append(self)

    def send(self, subject: str, message: Message, source: Subscriber | None) -> int:
        return self.network.publish(self, subject, message, source)

    def watch(self, feed: Feed) -> None:
        self.feeds.append(feed)

    def unwatch(self, feed: Feed) -> None:
        self.feeds.remove(feed)

    def arrive(self, subject: str, headers: dict[str, str], payload: bytes,
               feed: Feed) -> int:
        message = message_from(subject_to_topic(PREFIX, subject), payload, headers, 0.0)
        exclude = source_on(headers, self.node_id) if feed.queue else None
        return self.receive(message, feed if exclude is None else feed.excluding(exclude))


def router_node(network: MemoryNats, node_id: str = "n1") -> ClusterRouter:
    """A cluster router on ``network`` that routes what arrives by itself."""
    bus = MemoryBus(network, node_id)
    router = ClusterRouter(PREFIX, bus, LocalRouter())
    bus.receive = lambda message, feed: router.route(message, feed)
    return router


def engine_node(network: MemoryNats, engine_factory: Callable[[ClusterRouter], Engine],
                node_id: str) -> tuple[Engine, MemoryBus]:
    """An engine built with a cluster router on ``network``; arrivals go through
    ``Engine.publish`` as the NATS backplane sends them."""
    bus = MemoryBus(network, node_id)
    router = ClusterRouter(PREFIX, bus)
    engine = engine_factory(router)
    bus.receive = lambda message, feed: engine.publish(message, feed)
    return engine, bus
