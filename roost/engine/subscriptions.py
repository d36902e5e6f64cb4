"""Subscriptions and the index that finds them for a topic.

The index is a topic trie whose entries keep plain subscribers apart from ``$share``
groups (as NATS keeps queue subscribers apart), with a cache of results for exact
topics that any change to the index clears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from roost.engine.message import Message
from roost.engine.topic_trie import TopicTrie


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

    def deliver(self, message: Message, subscriptions: list[Subscription]) -> None:
        """Take a message matched by ``subscriptions`` (plain ones, one or more)."""
        ...

    def deliver_shared(self, message: Message, sub: Subscription) -> None:
        """Take a message as the chosen member of ``sub``'s shared group."""
        ...


@dataclass(slots=True)
class SharedGroup:
    """Members of one ``$share/group/filter``; each message goes to one of them."""

    members: dict[str, tuple[Subscriber, Subscription]] = field(default_factory=dict)
    turn: int = 0

    def pick(self) -> tuple[Subscriber, Subscription] | None:
        """The next member in turn, preferring one that is online."""
        members = list(self.members.values())
        if not members:
            return None
        n = len(members)
        for step in range(n):
            candidate = members[(self.turn + step) % n]
            if candidate[0].online:
                self.turn = (self.turn + step + 1) % n
                return candidate
        # Nobody online: queue to the next persistent member in turn.
        candidate = members[self.turn % n]
        self.turn = (self.turn + 1) % n
        return candidate


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
        self._cache: dict[str, tuple[list[FilterEntry], Matches | None,
                                     tuple[SharedGroup, ...]]] = {}
        self.count = 0

    def add(self, subscriber: Subscriber, sub: Subscription, inner_filter: str) -> bool:
        """Add or replace ``subscriber``'s subscription; True if it replaced one."""
        self._cache.clear()
        entry = self._trie.setdefault(inner_filter, FilterEntry)
        if sub.share_group is None:
            table = entry.plain
        else:
            table = entry.shared.setdefault(sub.share_group, SharedGroup()).members
        existed = subscriber.key in table
        table[subscriber.key] = (subscriber, sub)
        if not existed:
            self.count += 1
        return existed

    def remove(self, subscriber_key: str, inner_filter: str, share_group: str | None) -> bool:
        entry = self._trie.get(inner_filter)
        if entry is None:
            return False
        self._cache.clear()
        if share_group is None:
            found = entry.plain.pop(subscriber_key, None) is not None
        else:
            group = entry.shared.get(share_group)
            found = group is not None and group.members.pop(subscriber_key, None) is not None
            if group is not None and not group.members:
                del entry.shared[share_group]
        if found:
            self.count -= 1
        if entry.empty():
            self._trie.discard(inner_filter)
        return found

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
            # A large answer is not kept whole: building it is small beside the
            # deliveries, and keeping it would cost memory per cached topic.
            self._cache[topic] = (entries, plain if len(plain) <= _CACHED_RESULT_MAX
                                  else None, groups)
            return plain, groups
        entries, fixed, groups = cached
        if fixed is not None:
            return fixed, groups
        return self._collect(entries), groups

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
