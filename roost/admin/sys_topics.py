"""The ``$SYS`` topic tree, with Mosquitto's topic names.

Every ``[sys] interval`` seconds the broker publishes its counters as retained QoS 0
messages under ``$SYS/broker/``; like Mosquitto, a value is published again only when it
changed (the retained copy serves new subscribers). ``$SYS`` messages are kept in memory
only (never written to the store) and are not counted as received messages, nor in
``retained messages/count``; deliveries of them to ``$SYS`` subscribers count as sent,
as in Mosquitto. Subscribers to ``#`` do not get them (topics starting with ``$`` do not
match a leading wildcard).

The ``load/.../1min``, ``5min`` and ``15min`` values are exponential moving averages of
the rate per minute, computed as Mosquitto does: at each update, with ``dt`` the seconds
since the previous one and ``rate`` the per-minute rate over them,
``value = rate + exp(-dt / window) * (value - rate)``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from roost import __version__
from roost.admin.node import EngineFigures, Node
from roost.engine.message import Message, Origin

log = logging.getLogger("roost.sys")

PREFIX = "$SYS/broker/"
WINDOWS = (("1min", 60.0), ("5min", 300.0), ("15min", 900.0))


class SysTopics:
    """Publishes ``$SYS/broker/...`` for ``node`` every ``interval`` seconds, while
    ``run()`` runs."""

    def __init__(self, node: Node, interval: float,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.interval = interval
        self._now = now
        self._started = now()
        self._last_time = self._started
        self._last_counts: dict[str, int] = {}
        self._loads: dict[str, float] = {}
        self._published: dict[str, bytes] = {}
        self.clients_maximum = 0

    async def run(self) -> None:
        """Update every ``interval`` seconds until cancelled."""
        while True:
            try:
                self.update()
            except Exception:  # pragma: no cover - a bug here must not stop the broker
                log.exception("$SYS update failed")
            await asyncio.sleep(self.interval)

    @staticmethod
    def _counts(figures: EngineFigures) -> dict[str, int]:
        stats = figures.stats
        return {
            "messages/received": stats.messages_received,
            "messages/sent": stats.messages_sent,
            "bytes/received": stats.bytes_received,
            "bytes/sent": stats.bytes_sent,
            "connections": stats.connections_total,
        }

    def values(self) -> dict[str, str]:
        """Every ``$SYS/broker/`` topic (without the prefix) and its current value
        (none while the engine is not up)."""
        figures = self.node.figures()
        if figures is None:
            return {}
        now = self._now()
        counts = self._counts(figures)
        self._update_loads(now, counts)
        census = figures.census
        connected = census.online
        self.clients_maximum = max(self.clients_maximum, connected)
        stored = census.queued + census.inflight
        retained = max(0, figures.retained - len(self._published))
        out = {
            "version": f"roost version {__version__}",
            "uptime": f"{int(now - self._started)} seconds",
            "clients/connected": str(connected),
            "clients/active": str(connected),
            "clients/disconnected": str(census.sessions - connected),
            "clients/inactive": str(census.sessions - connected),
            "clients/total": str(census.sessions),
            "clients/maximum": str(self.clients_maximum),
            "messages/received": str(counts["messages/received"]),
            "messages/sent": str(counts["messages/sent"]),
            "messages/stored": str(stored + retained),
            "store/messages/count": str(stored + retained),
            "bytes/received": str(counts["bytes/received"]),
            "bytes/sent": str(counts["bytes/sent"]),
            "subscriptions/count": str(figures.subscriptions),
            "retained messages/count": str(retained),
        }
        for name, value in self._loads.items():
            out[f"load/{name}"] = f"{value:.2f}"
        return out

    def _update_loads(self, now: float, counts: dict[str, int]) -> None:
        dt = now - self._last_time
        first = not self._last_counts
        for key, count in counts.items():
            for window, seconds in WINDOWS:
                name = f"{key}/{window}"
                if first:
                    self._loads[name] = 0.0
                    continue
                if dt <= 0:
                    continue
                rate = (count - self._last_counts[key]) * 60.0 / dt
                exponent = math.exp(-dt / seconds)
                self._loads[name] = rate + exponent * (self._loads[name] - rate)
        self._last_counts = counts
        self._last_time = now

    def update(self) -> int:
        """Publish the values that changed since the last update; return how many."""
        changed = 0
        for name, value in self.values().items():
            payload = value.encode()
            topic = PREFIX + name
            if self._published.get(topic) == payload:
                continue
            # Also what ``retained messages/count`` leaves out.
            self._published[topic] = payload
            self.node.publish_transient(Message(topic, payload, 0, True,
                                                origin_kind=Origin.SYS))
            changed += 1
        return changed
