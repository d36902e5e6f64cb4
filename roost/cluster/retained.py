"""Retained messages in cluster mode, for now: each node keeps its own.

A message that arrives from another node keeps its retain flag (subscribers with
Retain As Published see it) but does not change this node's retained messages: the
publishing node holds it. The retained stream that gives every node the same retained
messages (shared/cluster.md, "Retained") is a later step; until then a SUBSCRIBE gets the
retained messages of its own node only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from roost.engine.message import Message, Origin
from roost.engine.retained import Retained


class NodeRetained:
    """``Retained`` that ignores updates from other nodes and otherwise is ``inner``."""

    def __init__(self, inner: Retained) -> None:
        self.inner = inner

    @property
    def count(self) -> int:
        return self.inner.count

    def update(self, message: Message, persist: bool = True) -> None:
        if message.origin_kind is not Origin.REMOTE:
            self.inner.update(message, persist)

    def matching(self, topic_filter: str, now: float) -> Iterator[Message]:
        return self.inner.matching(topic_filter, now)

    def when_current(self, done: Callable[[bool], None]) -> None:
        self.inner.when_current(done)
