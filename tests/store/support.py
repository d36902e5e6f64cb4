"""Helpers of the store tests: run a loop until a commit calls back or a load returns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from roost.engine.records import StoredMessage, StoredSession
from roost.engine.store import Store


def wait_for(loop: asyncio.AbstractEventLoop, predicate: Callable[[], bool],
             timeout: float = 5.0) -> float:
    """Run the loop until ``predicate()`` holds; return the seconds it took."""

    async def poll() -> float:
        start = loop.time()
        while not predicate():
            if loop.time() - start > timeout:
                raise AssertionError(f"not reached within {timeout} s")
            await asyncio.sleep(0.005)
        return loop.time() - start

    return loop.run_until_complete(poll())


def commit(loop: asyncio.AbstractEventLoop, store: Store, timeout: float = 5.0) -> bool:
    """Commit and wait for the callback; return what it said."""
    results: list[bool] = []
    store.commit(results.append)
    wait_for(loop, lambda: bool(results), timeout)
    assert len(results) == 1
    return results[0]


def load(loop: asyncio.AbstractEventLoop, store: Store, client_id: str) -> StoredSession | None:
    return loop.run_until_complete(store.session_load(client_id))


def retained(topic: str, payload: bytes = b"x") -> StoredMessage:
    return StoredMessage(topic, payload, 1, True, b"\x00", None)
