"""Plain records the store persists, independent of the engine's live objects.

Times are wall-clock seconds since the epoch; see ``roost.engine.store.Store``.
"""

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
    """A subscription with its options (3.8.3.1); ``topic_filter`` keeps any
    ``$share/group/`` prefix and is the subscription's key within its session."""

    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None


@dataclass(slots=True)
class StoredDelivery:
    """One entry of a session's outgoing queue.

    ``seq`` is the session's own number for it: unique within the session, increasing
    in queue order, and the key of ``delivery_update`` and ``delivery_delete``.
    ``qos`` and ``retain`` are as sent to this subscriber (``message`` keeps the
    published ones). ``state`` is ``queued`` (not sent; ``packet_id`` is None),
    ``publish`` (PUBLISH sent with ``packet_id``, awaiting PUBACK or PUBREC) or
    ``pubrel`` (PUBREL sent, awaiting PUBCOMP). ``share`` is the shared subscription
    (``$share/group/filter``) it came through, None for a plain one: if the session
    ends before its client has the message, it goes back to that group (MQTT 5 4.8.2).
    """

    seq: int
    message: StoredMessage
    qos: int
    retain: bool
    subscription_ids: list[int] = field(default_factory=list)
    packet_id: int | None = None
    state: str = "queued"
    share: str | None = None


@dataclass(slots=True)
class StoredSession:
    """A persistent session. ``expiry_interval`` is in seconds, None for never (3.1.2.11.2).

    ``session_save`` writes only the session's own fields; the lists are filled when
    loading, from what was recorded one by one.
    """

    client_id: str
    expiry_interval: int | None
    # Wall-clock time the client went offline; None while connected.
    disconnected_at: float | None = None
    subscriptions: list[StoredSubscription] = field(default_factory=list)
    deliveries: list[StoredDelivery] = field(default_factory=list)
    awaiting_pubrel: list[int] = field(default_factory=list)
    # A will still to be published (delay pending), and the wall-clock time it is due
    # (None: publish it as soon as the session is restored).
    will: StoredMessage | None = None
    will_due_at: float | None = None
