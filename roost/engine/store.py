"""The engine's durable-state interface, and the in-memory implementation.

The engine records every change that must survive a restart through a ``Store`` and
asks it to ``commit`` before sending an acknowledgement that promises durability. The
in-memory store commits at once and keeps only retained messages; the SQLite store
(``roost.store.sqlite``) batches commits and calls back once the data is on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from roost.engine.records import (
    StoredDelivery,
    StoredMessage,
    StoredSession,
    StoredSubscription,
)


class Store(Protocol):
    @property
    def healthy(self) -> bool:
        """False while writes are failing (disk full, read-only): refuse durable work."""
        ...

    def retained_set(self, message: StoredMessage) -> None: ...
    def retained_delete(self, topic: str) -> None: ...
    def retained_load(self) -> Iterable[StoredMessage]: ...
    def session_save(self, session: StoredSession) -> None: ...
    def session_delete(self, client_id: str) -> None: ...
    def subscription_set(self, client_id: str, sub: StoredSubscription) -> None: ...
    def subscription_delete(self, client_id: str, topic_filter: str) -> None: ...
    def delivery_add(self, client_id: str, delivery: StoredDelivery) -> None: ...
    def delivery_update(self, client_id: str, seq: int, packet_id: int | None,
                        state: str) -> None: ...
    def delivery_delete(self, client_id: str, seq: int) -> None: ...
    def pubrel_awaited(self, client_id: str, packet_id: int) -> None: ...
    def pubrel_received(self, client_id: str, packet_id: int) -> None: ...
    def sessions_load(self) -> list[StoredSession]: ...

    def commit(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(True)`` once every change recorded so far is durable, or
        ``callback(False)`` if it could not be made durable."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """Keeps retained messages in memory; nothing survives the process."""

    healthy = True

    def __init__(self) -> None:
        self._retained: dict[str, StoredMessage] = {}

    def retained_set(self, message: StoredMessage) -> None:
        self._retained[message.topic] = message

    def retained_delete(self, topic: str) -> None:
        self._retained.pop(topic, None)

    def retained_load(self) -> Iterable[StoredMessage]:
        return list(self._retained.values())

    def session_save(self, session: StoredSession) -> None:
        pass

    def session_delete(self, client_id: str) -> None:
        pass

    def subscription_set(self, client_id: str, sub: StoredSubscription) -> None:
        pass

    def subscription_delete(self, client_id: str, topic_filter: str) -> None:
        pass

    def delivery_add(self, client_id: str, delivery: StoredDelivery) -> None:
        pass

    def delivery_update(self, client_id: str, seq: int, packet_id: int | None,
                        state: str) -> None:
        pass

    def delivery_delete(self, client_id: str, seq: int) -> None:
        pass

    def pubrel_awaited(self, client_id: str, packet_id: int) -> None:
        pass

    def pubrel_received(self, client_id: str, packet_id: int) -> None:
        pass

    def sessions_load(self) -> list[StoredSession]:
        return []

    def commit(self, callback: Callable[[bool], None]) -> None:
        callback(True)

    def close(self) -> None:
        self._retained.clear()
