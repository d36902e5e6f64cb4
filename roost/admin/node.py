"""The node as operations sees it: what /metrics, /readyz, the JSON API, ``$SYS`` and
the drain read from a running node, and the few commands they may give it.

The start-up wiring (``roost.app``) implements ``Node``; nothing in ``roost.admin``
knows the class behind it, its connections or the engine's internals. Reads return the
engine's own value types (``Stats``, ``Census``) or small records made for the purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from roost.engine.message import Message
from roost.engine.sessions import Census
from roost.engine.stats import Stats
from roost.mqtt import ReasonCode
from roost.mqtt.properties import Properties


class ListenerFigures(Protocol):
    """One listener's connection counts."""

    @property
    def name(self) -> str: ...

    @property
    def active(self) -> int:
        """Network connections open now."""
        ...

    @property
    def refused(self) -> int:
        """Connections refused for ``max_connections`` since start."""
        ...


@dataclass(frozen=True, slots=True)
class EngineFigures:
    """The engine's counters and sizes. ``stats`` is the live counter object, read when
    used; the other values were taken when this record was made."""

    stats: Stats
    census: Census
    subscriptions: int
    retained: int
    # The store, for its health and commit figures; read by attribute, since only
    # some stores have them (the memory store has no commits).
    store: object


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """A connected client."""

    client_id: str
    peer: str
    protocol_level: int
    listener: str
    username: str | None
    # Wall-clock time the connection was accepted.
    connected_since: float
    subscriptions: int


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """One subscription of a session, online or not."""

    client_id: str
    topic_filter: str
    qos: int
    online: bool


class Node(Protocol):
    """A running node, for the operations side."""

    @property
    def ready(self) -> bool:
        """Whether the node takes new clients (``/readyz``)."""
        ...

    def listeners(self) -> Sequence[ListenerFigures]: ...

    def figures(self) -> EngineFigures | None:
        """The engine's figures; None until the engine is up (the store is being
        recovered at start-up)."""
        ...

    def clients(self) -> list[ClientInfo]:
        """The connected clients, in no particular order."""
        ...

    def client(self, client_id: str) -> ClientInfo | None:
        """``client_id`` if it is connected."""
        ...

    def subscriptions(self) -> list[SubscriptionInfo]:
        """Every session's subscriptions, in no particular order."""
        ...

    def disconnect(self, client_id: str, reason: ReasonCode, why: str) -> bool:
        """Send a connected client away (MQTT 5 clients get DISCONNECT with ``reason``
        first; 3.x connections are closed); False if it was not connected."""
        ...

    def disconnect_all(self, reason: ReasonCode, why: str,
                       properties: Properties | None = None) -> int:
        """Send every connected client away; return how many were connected."""
        ...

    def stop_accepting(self) -> None:
        """Readiness false, and the listeners take no new connections (open ones
        stay)."""
        ...

    def publish_transient(self, message: Message) -> None:
        """Route a retained ``message`` and keep it as its topic's retained message in
        memory only: the store is not written (the node's own ``$SYS`` values, which
        are published again after a restart)."""
        ...
