"""Prometheus metrics: a collector that reads the engine's counters at scrape time.

Nothing here runs per message: the engine keeps plain integer counters
(``roost.engine.stats.Stats``) and this collector turns them into metric families
only when ``/metrics`` is scraped. The names and their meaning are in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from roost.admin.node import Node

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DROP_REASONS = (
    ("queue_full", "dropped_queue_full"),
    ("expired", "dropped_expired"),
    ("too_large", "dropped_too_large"),
    ("slow_consumer", "dropped_slow_consumer"),
    ("store_failure", "dropped_store_failure"),
    ("no_share_member", "dropped_no_share_member"),
)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _labelled(family: CounterMetricFamily | GaugeMetricFamily,
              rows: Iterable[tuple[str, float]]) -> CounterMetricFamily | GaugeMetricFamily:
    for label, value in rows:
        family.add_metric([label], value)
    return family


class NodeCollector(Collector):
    """Everything Roost itself exports, read from a running node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        yield _gauge("roost_ready", "1 when the broker takes new clients (see /readyz)",
                     1 if node.ready else 0)
        listeners = list(node.listeners())
        yield _gauge("roost_connections", "Open network connections, all listeners",
                     sum(state.active for state in listeners))
        yield _labelled(GaugeMetricFamily("roost_listener_connections",
                                          "Open network connections by listener",
                                          labels=["listener"]),
                        ((state.name, state.active) for state in listeners))
        yield _labelled(CounterMetricFamily("roost_listener_connections_refused",
                                            "Connections refused for max_connections",
                                            labels=["listener"]),
                        ((state.name, state.refused) for state in listeners))
        figures = node.figures()
        if figures is None:
            return
        stats = figures.stats
        yield _counter("roost_connections", "Connections accepted since start",
                       stats.connections_total)
        census = figures.census
        online, queued, inflight = census.online, census.queued, census.inflight
        yield _labelled(GaugeMetricFamily("roost_sessions", "Sessions by state",
                                          labels=["state"]),
                        (("online", online), ("offline", census.sessions - online)))
        yield _gauge("roost_subscriptions", "Subscriptions (shared ones included)",
                     figures.subscriptions)
        yield _gauge("roost_retained_messages", "Retained messages held",
                     figures.retained)
        yield _gauge("roost_queued_messages",
                     "Messages queued in sessions, waiting to be sent (all sessions)",
                     queued)
        yield _gauge("roost_inflight_messages",
                     "QoS 1/2 messages sent and not yet acknowledged (all sessions)",
                     inflight)
        yield _labelled(CounterMetricFamily("roost_messages_received",
                                            "PUBLISH packets received from clients, by QoS",
                                            labels=["qos"]),
                        ((str(q), n) for q, n in enumerate(stats.received_by_qos)))
        yield _labelled(CounterMetricFamily("roost_messages_sent",
                                            "PUBLISH packets sent to clients, by QoS",
                                            labels=["qos"]),
                        ((str(q), n) for q, n in enumerate(stats.sent_by_qos)))
        yield _counter("roost_bytes_received", "Bytes received from clients (MQTT level)",
                       stats.bytes_received)
        yield _counter("roost_bytes_sent", "Bytes sent to clients (MQTT level)",
                       stats.bytes_sent)
        yield _labelled(CounterMetricFamily("roost_messages_dropped",
                                            "Messages dropped, by reason",
                                            labels=["reason"]),
                        ((reason, getattr(stats, attr)) for reason, attr in DROP_REASONS))
        yield _counter("roost_shared_redispatched",
                       "Shared-subscription messages handed to another member of their "
                       "group because the member holding them ended (MQTT 5 4.8.2)",
                       stats.shared_redispatched)
        yield _counter("roost_auth_failures", "Connections refused by authentication",
                       stats.auth_failures)
        yield _counter("roost_protocol_errors", "Connections closed for protocol errors",
                       stats.protocol_errors)
        yield _labelled(CounterMetricFamily("roost_limit_breaches",
                                            "Times a configured limit was exceeded, by limit",
                                            labels=["limit"]),
                        sorted(stats.limit_breaches.items()))
        yield from self._store(figures.store)

    @staticmethod
    def _store(store: object) -> Iterator[Metric]:
        healthy = getattr(store, "healthy", True)
        yield _gauge("roost_store_healthy", "1 while store writes succeed", 1 if healthy else 0)
        commits = getattr(store, "commits", None)
        if commits is None:
            return  # the memory store has no commits
        yield _counter("roost_store_commits", "Store batches committed", commits)
        yield _gauge("roost_store_last_batch_size", "Statements in the last committed batch",
                     getattr(store, "last_batch", 0))
        yield _gauge("roost_store_last_commit_seconds", "Duration of the last commit",
                     getattr(store, "last_commit_seconds", 0.0))
        yield SummaryMetricFamily("roost_store_commit_seconds",
                                  "Commit durations (count and sum of seconds)",
                                  count_value=commits,
                                  sum_value=getattr(store, "commit_seconds_total", 0.0))


def build_registry(node: Node) -> CollectorRegistry:
    """A registry of our own (no global state): Roost's metrics and process CPU/memory."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
