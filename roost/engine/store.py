"""The engine's durable-state interface, and the in-memory implementation.

The engine records every change that must survive a restart through a ``Store`` and
asks it to ``commit`` before sending an acknowledgement that promises durability. The
in-memory store commits at once; the SQLite and JetStream stores batch commits and call
back when the data is on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from roost.engine.message import Message


class Store(Protocol):
    def retained_set(self, message: Message) -> None: ...

    def retained_delete(self, topic: str) -> None: ...

    def retained_load(self) -> Iterable[Message]: ...

    def commit(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(True)`` once every change recorded so far is durable, or
        ``callback(False)`` if it could not be made durable."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """Keeps retained messages in memory; nothing survives the process."""

    def __init__(self) -> None:
        self._retained: dict[str, Message] = {}

    def retained_set(self, message: Message) -> None:
        self._retained[message.topic] = message

    def retained_delete(self, topic: str) -> None:
        self._retained.pop(topic, None)

    def retained_load(self) -> Iterable[Message]:
        return list(self._retained.values())

    def commit(self, callback: Callable[[bool], None]) -> None:
        callback(True)

    def close(self) -> None:
        self._retained.clear()
