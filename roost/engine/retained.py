"""Retained messages: one per topic, found by topic filter.

``Retained`` is what the engine needs; ``RetainedMessages`` implements it for one node,
backed by the store. A cluster implementation keeps the same in-memory index fed by the
updates of every node (cluster.md: a stream with one message per topic).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from roost.engine.message import Message
from roost.engine.persistence import Converter
from roost.engine.reserved import is_broker_topic
from roost.engine.store import Store
from roost.engine.topic_trie import TopicTrie


class Retained(Protocol):
    @property
    def count(self) -> int:
        """Topics with a retained message now ($SYS ones included)."""
        ...

    def update(self, message: Message, persist: bool = True) -> None:
        """Apply a message with the retain flag: it replaces the topic's retained
        message, or with an empty payload removes it (3.3.1.3). With ``persist`` false
        it is kept in memory only (the broker's own $SYS values)."""
        ...

    def matching(self, topic_filter: str, now: float) -> Iterator[Message]:
        """Unexpired retained messages whose topic ``topic_filter`` matches (``now`` is
        monotonic seconds); a leading wildcard does not match ``$`` topics (4.7.2)."""
        ...

    def when_current(self, done: Callable[[bool], None]) -> None:
        """Call ``done`` once ``matching`` reflects every retained update
        acknowledged anywhere before this call (read-your-writes across nodes,
        cluster.md §1.5); ``done(False)`` if that could not be established in time (the
        caller then sends what it has). Possibly before returning: one node's index is
        always current."""
        ...


class RetainedMessages:
    """Retained messages of one node, in a topic trie, written through to the store."""

    def __init__(self, store: Store, converter: Converter) -> None:
        self._store = store
        self._converter = converter
        self._trie: TopicTrie[Message] = TopicTrie()
        self.count = 0
        for stored in store.retained_load():
            if is_broker_topic(stored.topic):
                # Written by a client before $SYS was refused to clients: the broker's
                # values are published afresh, so a spoofed one must not come back.
                store.retained_delete(stored.topic)
                continue
            self._put(converter.message_in(stored))

    def _put(self, message: Message) -> None:
        if self._trie.get(message.topic) is None:
            self.count += 1
        self._trie.set(message.topic, message)

    def update(self, message: Message, persist: bool = True) -> None:
        """Apply a PUBLISH with the retain flag: store it, or delete on empty payload.
        With ``persist`` false the store is not written (the broker's own $SYS values,
        which are published again after a restart)."""
        if message.payload:
            self._put(message)
            if persist:
                self._store.retained_set(self._converter.message_out(message))
        else:
            if self._trie.discard(message.topic) is not None:
                self.count -= 1
            if persist:
                self._store.retained_delete(message.topic)

    def when_current(self, done: Callable[[bool], None]) -> None:
        done(True)  # every update of this node is applied before it is acknowledged

    def matching(self, topic_filter: str, now: float) -> Iterator[Message]:
        """Unexpired retained messages whose topic ``topic_filter`` matches."""
        live, expired = split_expired(self._trie.match_names(topic_filter), now)
        for message in expired:
            if self._trie.discard(message.topic) is not None:
                self.count -= 1
            self._store.retained_delete(message.topic)
        return iter(live)


def split_expired(messages: Iterable[Message], now: float
                  ) -> tuple[list[Message], list[Message]]:
    """``messages`` as (still live, expired at ``now``, monotonic seconds): what a
    retained index sends and what it discards."""
    live: list[Message] = []
    expired: list[Message] = []
    for message in messages:
        (expired if message.expired(now) else live).append(message)
    return live, expired
