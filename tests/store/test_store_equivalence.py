"""Memory and SQLite stores end in the same state after any sequence of writes.

The contract tests pin each rule with an example; this state machine drives both
stores with the same random writes, commits between some of them (compared after, or
left in flight so that SQLite's skipping of writes to deliveries deleted before their batch
leaves is exercised too), and compares what each loads back.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from roost.engine.records import (
    StoredDelivery,
    StoredMessage,
    StoredSession,
    StoredSubscription,
)
from roost.engine.store import BulkLoad, MemoryStore, Store
from roost.store.sqlite import SqliteStore
from tests.store.support import commit, load

CLIENTS = ("a", "b")
clients = st.sampled_from(CLIENTS)
filters = st.sampled_from(["x", "y/+", "$share/g/z"])
times = st.none() | st.floats(0, 2e9, allow_nan=False)
messages = st.builds(StoredMessage, st.sampled_from(["t/1", "t/2"]), st.binary(max_size=3),
                     st.integers(0, 2), st.booleans(), st.just(b"\x00"), times)
# (packet id, state) pairs a delivery goes through.
states = st.sampled_from([(None, "queued"), (1, "publish"), (2, "publish"), (2, "pubrel")])


class SameState(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = tempfile.TemporaryDirectory()
        self.stores: list[Store] = [MemoryStore(), SqliteStore(self.directory.name, self.loop)]
        # Enough of a model to aim writes at what exists (a few at what does not).
        self.saved: set[str] = set()
        self.deliveries: set[tuple[str, int]] = set()
        self.pubrels: set[tuple[str, int]] = set()
        self.next_seq = 1
        for cid in CLIENTS:
            self.save(cid, 60, None, None, None)

    def both(self, write: Callable[[Store], Any]) -> None:
        for store in self.stores:
            write(store)

    def state(self, store: Store) -> tuple[Any, ...]:
        assert commit(self.loop, store)
        assert isinstance(store, BulkLoad)
        return (sorted(store.sessions_load(), key=lambda s: s.client_id),
                [load(self.loop, store, cid) for cid in CLIENTS],
                sorted(store.retained_load(), key=lambda m: m.topic))

    def teardown(self) -> None:
        try:
            memory, sqlite = self.stores
            assert self.state(sqlite) == self.state(memory)
        finally:
            for store in self.stores:
                store.close()
            self.loop.close()
            self.directory.cleanup()

    # -- Sessions ------------------------------------------------------------------------

    @rule(cid=clients, expiry=st.none() | st.integers(0, 100), disconnected=times,
          will=st.none() | messages, due=times)
    def save(self, cid: str, expiry: int | None, disconnected: float | None,
             will: StoredMessage | None, due: float | None) -> None:
        self.both(lambda s: s.session_save(
            StoredSession(cid, expiry, disconnected, will=will, will_due_at=due)))
        self.saved.add(cid)

    @rule(cid=clients)
    def delete(self, cid: str) -> None:
        self.both(lambda s: s.session_delete(cid))
        self.saved.discard(cid)
        self.deliveries = {d for d in self.deliveries if d[0] != cid}
        self.pubrels = {p for p in self.pubrels if p[0] != cid}

    # Writes into a session need it saved (the contract leaves anything else open).

    @precondition(lambda self: self.saved)
    @rule(data=st.data(), topic_filter=filters, qos=st.integers(0, 2))
    def subscribe(self, data: st.DataObject, topic_filter: str, qos: int) -> None:
        cid = data.draw(st.sampled_from(sorted(self.saved)))
        self.both(lambda s: s.subscription_set(cid, StoredSubscription(topic_filter, qos)))

    @precondition(lambda self: self.saved)
    @rule(data=st.data(), topic_filter=filters)
    def unsubscribe(self, data: st.DataObject, topic_filter: str) -> None:
        cid = data.draw(st.sampled_from(sorted(self.saved)))
        self.both(lambda s: s.subscription_delete(cid, topic_filter))

    @precondition(lambda self: self.saved)
    @rule(data=st.data(), message=messages, ids=st.lists(st.integers(1, 9), max_size=2),
          state=states, again=st.booleans())
    def add(self, data: st.DataObject, message: StoredMessage, ids: list[int],
            state: tuple[int | None, str], again: bool) -> None:
        cid = data.draw(st.sampled_from(sorted(self.saved)))
        mine = sorted(seq for c, seq in self.deliveries if c == cid)
        if again and mine:  # same seq again: replaces the delivery
            seq = data.draw(st.sampled_from(mine))
        else:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
        delivery = StoredDelivery(seq, message, message.qos, False, ids, *state)
        self.both(lambda s: s.delivery_add(cid, delivery))
        self.deliveries.add((cid, seq))

    def _delivery(self, data: st.DataObject) -> tuple[str, int]:
        existing = st.sampled_from(sorted(self.deliveries)) if self.deliveries else st.nothing()
        absent = st.tuples(clients, st.integers(1000, 1001))
        return data.draw(existing | absent if self.deliveries else absent)

    @rule(data=st.data(), state=states)
    def update(self, data: st.DataObject, state: tuple[int | None, str]) -> None:
        cid, seq = self._delivery(data)
        if cid in self.saved:
            self.both(lambda s: s.delivery_update(cid, seq, *state))

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        cid, seq = self._delivery(data)
        if cid in self.saved:
            self.both(lambda s: s.delivery_delete(cid, seq))
            self.deliveries.discard((cid, seq))

    @precondition(lambda self: self.saved)
    @rule(data=st.data(), packet_id=st.integers(1, 3))
    def pubrel_awaited(self, data: st.DataObject, packet_id: int) -> None:
        cid = data.draw(st.sampled_from(sorted(self.saved)))
        self.both(lambda s: s.pubrel_awaited(cid, packet_id))

    @precondition(lambda self: self.saved)
    @rule(data=st.data(), packet_id=st.integers(1, 3))
    def pubrel_received(self, data: st.DataObject, packet_id: int) -> None:
        cid = data.draw(st.sampled_from(sorted(self.saved)))
        self.both(lambda s: s.pubrel_received(cid, packet_id))

    # -- Retained messages and commits ---------------------------------------------------

    @rule(topic=st.sampled_from(["r/1", "r/2"]), message=messages)
    def retain(self, topic: str, message: StoredMessage) -> None:
        self.both(lambda s: s.retained_set(StoredMessage(
            topic, message.payload, message.qos, message.retain, message.properties,
            message.expires_at)))

    @rule(topic=st.sampled_from(["r/1", "r/2"]))
    def unretain(self, topic: str) -> None:
        self.both(lambda s: s.retained_delete(topic))

    @rule()
    def commit_and_compare(self) -> None:
        memory, sqlite = self.stores
        assert self.state(sqlite) == self.state(memory)

    @rule()
    def commit_in_flight(self) -> None:
        for store in self.stores:
            store.commit(lambda ok: None)
        self.loop.run_until_complete(asyncio.sleep(0))  # SQLite's batch leaves

    @invariant()
    def healthy(self) -> None:
        assert all(store.healthy for store in self.stores)


SameState.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                       deadline=None)
test_memory_and_sqlite_load_the_same_after_any_writes = SameState.TestCase
