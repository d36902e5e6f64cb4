"""Routing: from a published message to every subscriber that should receive it.

``Router`` is the seam for clustering: a backplane implements the same interface and
registers remote nodes as subscribers, so the engine never asks whether it is clustered.
"""

from __future__ import annotations

from typing import Protocol

from roost.engine.link import FlowSource
from roost.engine.message import Message
from roost.engine.subscriptions import Subscriber, Subscription, SubscriptionIndex
from roost.mqtt.topics import parse_shared


class Router(Protocol):
    def subscribe(self, subscriber: Subscriber, sub: Subscription) -> bool:
        """Add or replace ``subscriber``'s subscription; True if it replaced one."""
        ...

    def unsubscribe(self, subscriber: Subscriber, sub: Subscription) -> bool:
        """Remove it; True if it was there."""
        ...

    def route(self, message: Message, source: Subscriber | None = None,
              flow: FlowSource | None = None) -> int:
        """Deliver ``message`` to every plain subscriber whose filters match its topic
        and to one member of each matching shared group; return how many receivers
        that was (each group counting as one, 0 meaning nobody).

        ``source`` is the subscriber the message came in through (a backplane or a
        bridge), if any: it never gets the message back, neither as a plain subscriber
        nor as a group member. ``flow`` goes to each receiver (back-pressure, see
        ``FlowSource``).
        """
        ...

    def redispatch(self, group_key: str, message: Message) -> bool:
        """Give ``message`` to another member of the shared group ``group_key`` (the
        ``$share/group/filter`` it was delivered through) because the member that had
        it ended without receiving it (MQTT 5 4.8.2). True if a member took it; False
        if the group has no members left (the caller drops and counts it)."""
        ...

    @property
    def subscription_count(self) -> int: ...


class LocalRouter:
    """Routes within this process through a subscription index."""

    def __init__(self) -> None:
        self.index = SubscriptionIndex()

    @staticmethod
    def _inner(sub: Subscription) -> str:
        shared = parse_shared(sub.topic_filter)
        return shared.topic_filter if shared else sub.topic_filter

    def subscribe(self, subscriber: Subscriber, sub: Subscription) -> bool:
        return self.index.add(subscriber, sub, self._inner(sub))

    def unsubscribe(self, subscriber: Subscriber, sub: Subscription) -> bool:
        return self.index.remove(subscriber.key, self._inner(sub), sub.share_group)

    def route(self, message: Message, source: Subscriber | None = None,
              flow: FlowSource | None = None) -> int:
        plain, groups = self.index.match(message.topic)
        if source is None or (back := plain.get(source.key)) is None or back[0] is not source:
            for subscriber, subs in plain.values():
                subscriber.deliver(message, subs, flow)
            count = len(plain)
        else:
            for subscriber, subs in plain.values():
                if subscriber is not source:
                    subscriber.deliver(message, subs, flow)
            count = len(plain) - 1
        if not groups:
            return count
        for group in groups:
            picked = group.pick(source)
            if picked is not None:
                picked[0].deliver_shared(message, picked[1], flow)
                count += 1
        return count

    def redispatch(self, group_key: str, message: Message) -> bool:
        shared = parse_shared(group_key)
        if shared is None:
            return False
        group = self.index.group(shared.topic_filter, shared.group)
        picked = group.pick() if group is not None else None
        if picked is None:
            return False
        picked[0].deliver_shared(message, picked[1])
        return True

    @property
    def subscription_count(self) -> int:
        return self.index.count
