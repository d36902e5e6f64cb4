"""Conversion between live engine objects and the records a ``Store`` keeps.

Live messages carry monotonic deadlines; stored ones carry wall-clock deadlines, so a
message or session expiry keeps counting while the broker is down.
"""

from __future__ import annotations

from roost.engine.clock import Clock
from roost.engine.message import Message
from roost.engine.records import StoredDelivery, StoredMessage, StoredSubscription
from roost.engine.session import Delivery
from roost.engine.store import Store
from roost.engine.subscriptions import Subscription
from roost.mqtt.decoder import Reader, read_properties
from roost.mqtt.encoder import properties as encode_properties
from roost.mqtt.packets import Will
from roost.mqtt.properties import PacketKind
from roost.mqtt.topics import parse_shared


class Converter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def _to_wall(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        return self._clock.wall() + (deadline - self._clock.monotonic())

    def _to_monotonic(self, wall: float | None) -> float | None:
        if wall is None:
            return None
        return self._clock.monotonic() + (wall - self._clock.wall())

    def message_out(self, m: Message) -> StoredMessage:
        return StoredMessage(m.topic, m.payload, m.qos, m.retain,
                             encode_properties(m.properties), self._to_wall(m.expires_at))

    def message_in(self, s: StoredMessage, origin: str | None = None) -> Message:
        props = read_properties(Reader(s.properties), PacketKind.PUBLISH)
        return Message(s.topic, s.payload, s.qos, s.retain, props, origin,
                       self._to_monotonic(s.expires_at))

    def delivery_out(self, d: Delivery, packet_id: int | None, state: str) -> StoredDelivery:
        return StoredDelivery(d.seq, self.message_out(d.message), d.qos, d.retain,
                              list(d.subscription_ids), packet_id, state, d.share)

    def delivery_in(self, s: StoredDelivery) -> Delivery:
        return Delivery(self.message_in(s.message), s.qos, s.retain, list(s.subscription_ids),
                        s.seq, s.share)

    def will_out(self, w: Will) -> StoredMessage:
        return StoredMessage(w.topic, w.payload, w.qos, w.retain,
                             encode_properties(w.properties), None)

    def will_in(self, s: StoredMessage) -> Will:
        props = read_properties(Reader(s.properties), PacketKind.WILL)
        return Will(s.topic, s.payload, s.qos, s.retain, props)

    @staticmethod
    def subscription_out(sub: Subscription) -> StoredSubscription:
        return StoredSubscription(sub.topic_filter, sub.qos, sub.no_local,
                                  sub.retain_as_published, sub.retain_handling, sub.identifier)

    @staticmethod
    def subscription_in(s: StoredSubscription) -> Subscription:
        shared = parse_shared(s.topic_filter)
        return Subscription(s.topic_filter, s.qos, s.no_local, s.retain_as_published,
                            s.retain_handling, s.identifier, shared.group if shared else None)


class SessionJournal:
    """Records one persistent session's changes in the store."""

    def __init__(self, store: Store, converter: Converter, client_id: str) -> None:
        self._store = store
        self._converter = converter
        self._client_id = client_id

    def added(self, delivery: Delivery, packet_id: int | None, state: str) -> None:
        self._store.delivery_add(self._client_id,
                                 self._converter.delivery_out(delivery, packet_id, state))

    def updated(self, delivery: Delivery, packet_id: int, state: str) -> None:
        self._store.delivery_update(self._client_id, delivery.seq, packet_id, state)

    def removed(self, delivery: Delivery) -> None:
        self._store.delivery_delete(self._client_id, delivery.seq)

    def pubrel_awaited(self, packet_id: int) -> None:
        self._store.pubrel_awaited(self._client_id, packet_id)

    def pubrel_received(self, packet_id: int) -> None:
        self._store.pubrel_received(self._client_id, packet_id)

    def subscribed(self, sub: Subscription) -> None:
        self._store.subscription_set(self._client_id, self._converter.subscription_out(sub))

    def unsubscribed(self, topic_filter: str) -> None:
        self._store.subscription_delete(self._client_id, topic_filter)
