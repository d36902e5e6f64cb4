"""Fixtures of the store tests: an event loop of their own, and the ``store`` under
contract (each test that takes it runs once per implementation)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.engine.store import MemoryStore, Store
from roost.store.sqlite import SqliteStore


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          loop: asyncio.AbstractEventLoop) -> Iterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path, loop)
    yield made
    made.close()
