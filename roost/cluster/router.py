"""The cluster's router: the local router plus a bus to the other nodes.

``ClusterRouter`` implements the engine's ``Router`` by wrapping a ``LocalRouter``:

- **Subscriptions** go into the local index. Its interest events (a filter's first
  plain subscriber, a shared group's first member) become one bus subscription each,
  a ``Feed``, and its last one gone ends it: one NATS subscription per distinct local
  filter and per (share group, filter), however many sessions use it.
- **A message of this node** (a client's, a will, a bridge's) goes to the local plain
  subscribers and, once, onto the bus on its topic's subject. Shared groups are not
  served locally: every member in the cluster, this node's included, is behind one
  NATS queue group per (group, filter), so NATS gives each message to one member
  node, which picks one of its members. ``$SYS`` values stay on their node.
- **A message from the bus** comes in through ``Engine.publish`` with the ``Feed`` it
  arrived on as its source, and is never sent on again. NATS delivers a message once
  per matching subscription, so a node whose filters overlap (``a/+`` and ``a/#``)
  gets one copy per filter: a plain subscriber takes the copy of its smallest
  matching filter that has a feed, so it gets one message carrying all its matching
  subscriptions, as on one node. A group's copy goes to one member of that group.
- **While the bus is down** (not connected) routing is local only, shared groups
  included: nothing is queued for later (QoS 0 across nodes is at most once).

Topics and filters whose NATS subject would be too long (``SubjectTooLong``) stay
local: such a message reaches this node's subscribers only, such a filter only this
node's messages. Each is logged once and counted.

No NATS here: the bus is a protocol (``roost.cluster.backplane.NatsBackplane`` on
NATS; an in-memory one in the tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from roost.cluster.subjects import (
    SubjectTooLong,
    filter_to_subjects,
    shared_filter_to_subjects,
    topic_to_subject,
)
from roost.engine.link import FlowSource
from roost.engine.message import Message, Origin
from roost.engine.router import LocalRouter
from roost.engine.subscriptions import Subscriber, Subscription
from roost.mqtt.topics import SHARE_PREFIX

log = logging.getLogger("roost.cluster")

# Subjects of recent topics kept by the router (entries).
_CACHED_SUBJECTS = 16_384


@dataclass(slots=True)
class ClusterStats:
    """What the backplane did, for logs and metrics."""

    # Messages handed to the bus, and received from it.
    forwarded: int = 0
    received: int = 0
    # Kept on this node because their subject would be too long for NATS.
    topics_too_long: int = 0
    filters_too_long: int = 0
    # Not sent: the outgoing backlog was full, the message (with its headers) was
    # larger than NATS's max_payload, or NATS refused it.
    dropped_backlog: int = 0
    dropped_too_large: int = 0
    dropped_send_failed: int = 0
    # Received but not usable: headers no Roost node wrote, or a subject no topic maps to.
    dropped_malformed: int = 0
    # A group's copy arrived when the group had no member here any more.
    dropped_no_member: int = 0
    # Each kind of problem is logged the first time only.
    logged: set[str] = field(default_factory=set)

    def once(self, kind: str, text: str, *args: object) -> None:
        """Log ``text`` as a warning the first time ``kind`` happens."""
        if kind not in self.logged:
            self.logged.add(kind)
            log.warning(text + " (logged once; counted)", *args)


@dataclass(eq=False, slots=True)
class Feed:
    """One bus subscription of this node: the plain interest in ``topic_filter``, or
    the shared group ``share_group`` on it. To the engine it is the subscriber a
    message from the bus came in through (``Engine.publish``'s ``source``); it is never
    in the index, so nothing is ever delivered to it."""

    topic_filter: str
    share_group: str | None
    subjects: list[str]
    # The NATS queue group ("" for plain interest).
    queue: str = ""
    # The key of a subscriber of this node that must not get the message: a bridge
    # whose message came back through a queue group (see ``Bus.send``).
    exclude: str | None = None
    online: bool = True

    @property
    def key(self) -> str:
        return f"cluster:{self.queue or '-'}:{self.topic_filter}"

    def excluding(self, key: str) -> Feed:
        """This feed, for one message that must not go back to subscriber ``key``."""
        return Feed(self.topic_filter, self.share_group, self.subjects, self.queue, key)

    def deliver(self, message: Message, subscriptions: list[Subscription],
                flow: FlowSource | None = None) -> None:
        """Never called: a feed subscribes to nothing locally."""

    def deliver_shared(self, message: Message, sub: Subscription,
                       flow: FlowSource | None = None) -> None:
        """Never called: a feed joins no group locally."""


class Bus(Protocol):
    """What the router needs of the connection to the other nodes."""

    @property
    def connected(self) -> bool:
        """Whether messages sent now can reach the other nodes."""
        ...

    def send(self, subject: str, message: Message, source: Subscriber | None) -> int:
        """Send ``message`` to every node interested in ``subject``, this one's queue
        groups included; ``source`` (a bridge) must not get it back through them.
        Returns how many receivers it reached as far as it knows: NATS cannot tell, so
        1 once the message is on its way, 0 if it was dropped."""
        ...

    def watch(self, feed: Feed) -> None:
        """Subscribe to ``feed.subjects`` (in ``feed.queue``); messages arriving on them
        go to ``Engine.publish`` with ``feed`` as their source."""
        ...

    def unwatch(self, feed: Feed) -> None:
        """End what ``watch`` started."""
        ...


class ClusterRouter:
    """``Router`` for a node of a cluster (see the module docstring)."""

    def __init__(self, prefix: str, bus: Bus, local: LocalRouter | None = None,
                 stats: ClusterStats | None = None) -> None:
        self.prefix = prefix
        self.bus = bus
        self.local = local or LocalRouter()
        self.index = self.local.index
        self.stats = stats or ClusterStats()
        # (filter, share group or None) → its feed, while it has local interest.
        self.feeds: dict[tuple[str, str | None], Feed] = {}
        self.subject = lru_cache(maxsize=_CACHED_SUBJECTS)(self._subject)
        self.index.listeners.append(self)

    # -- Router ---------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber, sub: Subscription) -> bool:
        return self.local.subscribe(subscriber, sub)

    def unsubscribe(self, subscriber: Subscriber, sub: Subscription) -> bool:
        return self.local.unsubscribe(subscriber, sub)

    def route(self, message: Message, source: Subscriber | None = None,
              flow: FlowSource | None = None) -> int:
        if type(source) is Feed:
            return self._from_bus(message, source, flow)
        kind = message.origin_kind
        if kind is Origin.SYS or kind is Origin.REMOTE or not self.bus.connected:
            return self.local.route(message, source, flow)
        subject = self.subject(message.topic)
        if subject is None:
            self.stats.topics_too_long += 1
            return self.local.route(message, source, flow)
        plain, groups = self.index.match(message.topic)
        count = 0
        for subscriber, subs in plain.values():
            if subscriber is not source:
                subscriber.deliver(message, subs, flow)
                count += 1
        for group in groups:
            # A group without a feed (its filter is too long for NATS) is served here.
            if (group.topic_filter, group.name) not in self.feeds:
                picked = group.pick(source)
                if picked is not None:
                    picked[0].deliver_shared(message, picked[1], flow)
                    count += 1
        self.stats.forwarded += 1
        return count + self.bus.send(subject, message, source)

    def redispatch(self, group_key: str, message: Message) -> bool:
        # Another member of this node: the message has already crossed the bus once.
        return self.local.redispatch(group_key, message)

    @property
    def subscription_count(self) -> int:
        return self.local.subscription_count

    # -- From the bus ---------------------------------------------------------------

    def _from_bus(self, message: Message, feed: Feed, flow: FlowSource | None) -> int:
        self.stats.received += 1
        if feed.share_group is not None:
            group = self.index.group(feed.topic_filter, feed.share_group)
            excluded = group.members.get(feed.exclude) if group and feed.exclude else None
            picked = group.pick(excluded[0] if excluded else None) if group else None
            if picked is None:
                self.stats.dropped_no_member += 1
                return 0
            picked[0].deliver_shared(message, picked[1], flow)
            return 1
        plain, _groups = self.index.match(message.topic)
        mine = feed.topic_filter
        count = 0
        for subscriber, subs in plain.values():
            if len(subs) == 1:
                if subs[0].topic_filter != mine:
                    continue
            elif self._first_fed(subs) != mine:
                continue
            subscriber.deliver(message, subs, flow)
            count += 1
        return count

    def _first_fed(self, subs: list[Subscription]) -> str | None:
        """The smallest of these filters that has a feed: the one whose copy of a
        message serves a subscriber with all of them."""
        feeds = self.feeds
        return min((s.topic_filter for s in subs if (s.topic_filter, None) in feeds),
                   default=None)

    # -- Interest (SubscriptionIndex listener) ----------------------------------------

    def interest_gained(self, topic_filter: str, share_group: str | None) -> None:
        try:
            if share_group is None:
                queue, subjects = "", filter_to_subjects(self.prefix, topic_filter)
            else:
                queue, subjects = shared_filter_to_subjects(
                    self.prefix, f"{SHARE_PREFIX}{share_group}/{topic_filter}")
        except SubjectTooLong as exc:
            self.stats.filters_too_long += 1
            self.stats.once("filter", "cluster: a filter stays on this node: %s", exc)
            return
        feed = Feed(topic_filter, share_group, subjects, queue)
        self.feeds[topic_filter, share_group] = feed
        self.bus.watch(feed)

    def interest_lost(self, topic_filter: str, share_group: str | None) -> None:
        feed = self.feeds.pop((topic_filter, share_group), None)
        if feed is not None:
            self.bus.unwatch(feed)

    def _subject(self, topic: str) -> str | None:
        """The subject of ``topic``; None if it is too long for NATS (cached either
        way by ``subject``)."""
        try:
            return topic_to_subject(self.prefix, topic)
        except SubjectTooLong as exc:
            self.stats.once("topic", "cluster: a message stays on this node: %s", exc)
            return None
