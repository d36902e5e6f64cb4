"""Listeners: what each one shares among its connections (``tcp.start_listener`` binds
one)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from roost.config import ListenerConfig
from roost.engine.engine import Engine
from roost.transport.flush import Flusher
from roost.transport.tls import ContextHolder

log = logging.getLogger("roost.transport")

# After the first connection refused for max_connections, further refusals are only
# counted; one line sums them up when this many seconds have passed.
REFUSAL_LOG_WINDOW = 10.0


class ListenerState:
    """One listener's config, TLS context and connection count, shared by its
    connections."""

    def __init__(self, config: ListenerConfig, engine: Engine, flusher: Flusher,
                 tls: ContextHolder | None) -> None:
        self.config = config
        self.name = config.name
        self.engine = engine
        self.flusher = flusher
        self.tls = tls
        self._trusted = [ipaddress.ip_network(net, strict=False)
                         for net in config.proxy_trusted]
        self.active = 0
        self.refused = 0
        self._burst = 0
        self._burst_timer: asyncio.TimerHandle | None = None

    def trusts(self, host: str) -> bool:
        """Whether ``host`` may send a PROXY protocol header (is in ``proxy_trusted``)."""
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._trusted)

    def admit(self) -> bool:
        """Count a new connection in, or refuse it when ``max_connections`` are open."""
        limit = self.config.max_connections
        if limit and self.active >= limit:
            self._refused_one()
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1

    def _refused_one(self) -> None:
        self.refused += 1
        self._burst += 1
        if self._burst_timer is None:
            log.warning("listener %s: %d connections open (max_connections); refusing new "
                        "connections", self.name, self.active)
            self._burst_timer = asyncio.get_running_loop().call_later(
                REFUSAL_LOG_WINDOW, self._end_burst)

    def _end_burst(self) -> None:
        self._burst_timer = None
        if self._burst > 1:
            log.warning("listener %s: %d connections refused for max_connections in the "
                        "last %g s (%d in all)", self.name, self._burst, REFUSAL_LOG_WINDOW,
                        self.refused)
        self._burst = 0

    def close(self) -> None:
        if self._burst_timer is not None:
            self._burst_timer.cancel()
            self._burst_timer = None

