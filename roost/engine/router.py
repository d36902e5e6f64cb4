"""Routing: from a published message to every subscriber that should receive it.

``Router`` is the seam for clustering: a backplane implements the same interface and
registers remote nodes as subscribers, so the engine never asks whether it is clustered.
"""

from __future__ import annotations

from typing import Protocol

from roost.engine.message import Message
from roost.engine.subscriptions import Subscriber, Subscription, SubscriptionIndex
from roost.mqtt.topics import parse_shared


class Router(Protocol):
    def subscribe(self, subscriber: Subscriber, sub: Subscription) -> bool: ...

    def unsubscribe(self, subscriber: Subscriber, sub: Subscription) -> bool: ...

    def route(self, message: Message) -> int:
        """Deliver ``message``; return how many subscribers it went to."""
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

    def route(self, message: Message) -> int:
        matches = self.index.match(message.topic)
        for subscriber, subs in matches.values():
            subscriber.deliver(message, subs)
        return len(matches)

    @property
    def subscription_count(self) -> int:
        return self.index.count
