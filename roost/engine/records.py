"""Plain records the store persists, independent of the engine's live objects."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class StoredMessage:
    """A message as stored: for retained messages and session queues alike.

    ``expires_at`` is wall-clock seconds (epoch), so expiry counts across restarts.
    ``properties`` is the MQTT 5 property block as encoded on the wire.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: bytes = b"\x00"
    expires_at: float | None = None


@dataclass(slots=True)
class StoredSubscription:
    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None


@dataclass(slots=True)
class StoredDelivery:
    """One entry of a session's outgoing queue; ``state`` is queued, publish or pubrel."""

    seq: int
    message: StoredMessage
    qos: int
    retain: bool
    subscription_ids: list[int] = field(default_factory=list)
    packet_id: int | None = None
    state: str = "queued"


@dataclass(slots=True)
class StoredSession:
    client_id: str
    expiry_interval: int | None
    # Wall-clock time the client went offline; None while connected.
    disconnected_at: float | None = None
    subscriptions: list[StoredSubscription] = field(default_factory=list)
    deliveries: list[StoredDelivery] = field(default_factory=list)
    awaiting_pubrel: list[int] = field(default_factory=list)
    # A will still to be published (delay pending), encoded as a message + delay.
    will: StoredMessage | None = None
    will_due_at: float | None = None
