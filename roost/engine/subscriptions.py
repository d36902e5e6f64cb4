"""Subscriptions and the index that finds them for a topic.

The index is a topic trie whose entries keep plain subscribers apart from ``$share``
groups (as NATS keeps queue subscribers apart). A match returns both apart, unpicked, so
the answer for an exact topic can be cached; a change to a filter invalidates only the
cached topics that filter matches. The index tells listeners when a filter gains its
first subscriber and loses its last (a backplane holds one subscription per filter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from roost.engine.link import FlowSource
from roost.engine.message import Message
from roost.engine.topic_trie import TopicTrie
from roost.mqtt.topics import SHARE_PREFIX


@dataclass(slots=True)
class Subscription:
    topic_filter: str  # as the client sent it, "$share/g/a/b" included
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None
    share_group: str | None = None


class Subscriber(Protocol):
    """Anything that can receive routed messages: a local session, or a remote node."""

    @property
    def key(self) -> str: ...

    @property
    def online(self) -> bool: ...

    def deliver(self, message: Message, subscriptions: list[Subscription],
                flow: FlowSource | None = None) -> None:
        """Take a message matched by ``subscriptions`` (plain ones, one or more);
        ``flow`` is what to hold back if this receiver cannot keep up."""
        ...

    def deliver_shared(self, message: Message, sub: Subscription,
                       flow: FlowSource | None = None) -> None:
        """Take a message as the chosen member of ``sub``'s shared group."""
        ...


class InterestListener(Protocol):
    """Told when a filter gains its first subscriber and loses its last, per kind of
    interest: plain (``share_group`` None) or one shared group on it.

    ``topic_filter`` is the filter without ``$share/group/``. Calls come after the
    index has changed, synchronously, inside the (un)subscribe that caused them.
    """

    def interest_gained(self, topic_filter: str, share_group: str | None) -> None: ...

    def interest_lost(self, topic_filter: str, share_group: str | None) -> None: ...


class SharedGroup:
    """Members of one ``$share/group/filter``; each message goes to one of them."""

    __slots__ = ("name", "topic_filter", "members", "turn", "_ring")

    def __init__(self, name: str, topic_filter: str) -> None:
        self.name = name
        self.topic_filter = topic_filter
        self.members: dict[str, tuple[Subscriber, Subscription]] = {}
        self.turn = 0
        # The members in order, made on the first pick after a change.
        self._ring: list[tuple[Subscriber, Subscription]] | None = None

    @property
    def key(self) -> str:
        """The group's name as clients write it, ``$share/group/filter`` (the key of
        ``Router.redispatch``)."""
        return f"{SHARE_PREFIX}{self.name}/{self.topic_filter}"

    def join(self, subscriber: Subscriber, sub: Subscription) -> bool:
        """Add or replace a member; True if it replaced one."""
        existed = subscriber.key in self.members
        self.members[subscriber.key] = (subscriber, sub)
        self._ring = None
        return existed

    def leave(self, subscriber_key: str) -> bool:
        """Remove a member; True if it was one."""
        if self.members.pop(subscriber_key, None) is None:
            return False
        self._ring = None
        return True

    def pick(self, exclude: Subscriber | None = None) -> tuple[Subscriber, Subscription] | None:
        """The next member in turn, preferring one that is online, never ``exclude``;
        None if there is none."""
        ring = self._ring
        if ring is None:
            ring = self._ring = list(self.members.values())
        n = len(ring)
        turn = self.turn
        for step in range(n):
            candidate = ring[(turn + step) % n]
            if candidate[0].online and candidate[0] is not exclude:
                self.turn = (turn + step + 1) % n
                return candidate
        # Nobody online: queue to the next persistent member in turn.
        for step in range(n):
            candidate = ring[(turn + step) % n]
            if candidate[0] is not exclude:
                self.turn = (turn + step + 1) % n
                return candidate
        return None


@dataclass(slots=True)
class FilterEntry:
    plain: dict[str, tuple[Subscriber, Subscription]] = field(default_factory=dict)
    shared: dict[str, SharedGroup] = field(default_factory=dict)

    def empty(self) -> bool:
        return not self.plain and not self.shared


Matches = dict[str, tuple[Subscriber, list[Subscription]]]
# What a topic matches: plain subscribers (each with its matching subscriptions), and
# the shared groups, of which the router picks one member each per message.
Match = tuple[Matches, tuple[SharedGroup, ...]]

_CACHE_LIMIT = 10_000
# Largest answer (in subscribers) the cache keeps whole rather than rebuilds per message.
_CACHED_RESULT_MAX = 64


class SubscriptionIndex:
    def __init__(self) -> None:
        self._trie: TopicTrie[FilterEntry] = TopicTrie()
        # Answers for exact topics, and the same topics in a trie to find those a
        # changed filter matches.
        # Per topic: the whole answer if it is kept, else the entries to build it from.
        self._cache: dict[str, tuple[Match | None, list[FilterEntry],
                                     tuple[SharedGroup, ...]]] = {}
        self._cached_topics: TopicTrie[str] = TopicTrie()
        self.listeners: list[InterestListener] = []
        self.count = 0

    def add(self, subscriber: Subscriber, sub: Subscription, inner_filter: str) -> bool:
        """Add or replace ``subscriber``'s subscription (``inner_filter`` is its filter
        without ``$share/group/``); True if it replaced one."""
        self._invalidate(inner_filter)
        entry = self._trie.setdefault(inner_filter, FilterEntry)
        group_name = sub.share_group
        if group_name is None:
            first = not entry.plain
            existed = subscriber.key in entry.plain
            entry.plain[subscriber.key] = (subscriber, sub)
        else:
            group = entry.shared.get(group_name)
            first = group is None
            if group is None:
                group = entry.shared[group_name] = SharedGroup(group_name, inner_filter)
            existed = group.join(subscriber, sub)
        if not existed:
            self.count += 1
        if first:
            for listener in self.listeners:
                listener.interest_gained(inner_filter, group_name)
        return existed

    def remove(self, subscriber_key: str, inner_filter: str, share_group: str | None) -> bool:
        """Remove a subscription; True if it was there."""
        entry = self._trie.get(inner_filter)
        if entry is None:
            return False
        if share_group is None:
            found = entry.plain.pop(subscriber_key, None) is not None
            last = found and not entry.plain
        else:
            group = entry.shared.get(share_group)
            found = group is not None and group.leave(subscriber_key)
            last = found and group is not None and not group.members
            if last:
                del entry.shared[share_group]
        if not found:
            return False
        self._invalidate(inner_filter)
        self.count -= 1
        if entry.empty():
            self._trie.discard(inner_filter)
        if last:
            for listener in self.listeners:
                listener.interest_lost(inner_filter, share_group)
        return True

    def group(self, inner_filter: str, share_group: str) -> SharedGroup | None:
        """The shared group ``share_group`` on ``inner_filter``; None if it has no
        members."""
        entry = self._trie.get(inner_filter)
        return entry.shared.get(share_group) if entry is not None else None

    def match(self, topic: str) -> Match:
        """Plain subscribers for ``topic``, each with all its matching subscriptions,
        and the shared groups whose filter matches it. The caller must not change
        either (they may be the cached answer).
        """
        cached = self._cache.get(topic)
        if cached is None:
            entries = list(self._trie.match_filters(topic))
            plain = self._collect(entries)
            groups = tuple(g for e in entries for g in e.shared.values())
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
                self._cached_topics = TopicTrie()
            match = plain, groups
            # A large answer is not kept whole: building it is small beside the
            # deliveries, and keeping it would cost memory per cached topic.
            self._cache[topic] = (match if len(plain) <= _CACHED_RESULT_MAX else None,
                                  entries, groups)
            self._cached_topics.set(topic, topic)
            return match
        if cached[0] is not None:
            return cached[0]
        return self._collect(cached[1]), cached[2]

    def _invalidate(self, inner_filter: str) -> None:
        """Forget the cached answers for the topics ``inner_filter`` matches."""
        cache = self._cache
        if not cache:
            return
        if inner_filter == "#":
            cache.clear()
            self._cached_topics = TopicTrie()
            return
        cached_topics = self._cached_topics
        for topic in list(cached_topics.match_names(inner_filter)):
            del cache[topic]
            cached_topics.discard(topic)

    @staticmethod
    def _collect(entries: list[FilterEntry]) -> Matches:
        result: Matches = {}
        for entry in entries:
            for key, (subscriber, sub) in entry.plain.items():
                found = result.get(key)
                if found is None:
                    result[key] = (subscriber, [sub])
                else:
                    found[1].append(sub)
        return result
