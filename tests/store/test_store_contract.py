"""The ``Store`` port's contract (``roost.engine.store``), run against every
implementation through the ``store`` fixture: memory and SQLite alike.

Each test records changes, commits, and reads them back through ``session_load``,
``sessions_load`` (``BulkLoad``) or ``retained_load``. What only SQLite has (reopening,
refusing damaged files, group commit, failing disks) is in ``test_sqlite_store.py``.
"""

from __future__ import annotations

import asyncio

from roost.engine.records import (
    StoredDelivery,
    StoredMessage,
    StoredSession,
    StoredSubscription,
)
from roost.engine.store import BulkLoad, Store
from tests.store.support import commit, load, retained, wait_for

Loop = asyncio.AbstractEventLoop

MESSAGE = StoredMessage("a/x", b"\x00\xffpayload", 2, False, b"\x03\x23\x00\x05", 5000.0)
WILL = StoredMessage("will/t", b"bye", 1, True, b"\x05\x01\x01\x02\x00\x00", 9000.0)


def loaded(loop: Loop, store: Store, client_id: str) -> StoredSession:
    """Commit, then load a session that must exist."""
    assert commit(loop, store)
    session = load(loop, store, client_id)
    assert session is not None
    return session


def queued(seq: int, message: StoredMessage = MESSAGE, ids: list[int] | None = None,
           ) -> StoredDelivery:
    return StoredDelivery(seq, message, 1, False, ids or [], None, "queued")


# -- Retained messages --------------------------------------------------------------------


def test_retained_set_replaces_and_delete_removes(loop: Loop, store: Store) -> None:
    store.retained_set(retained("r/1", b"one"))
    store.retained_set(retained("r/2", b"two"))
    store.retained_set(retained("r/3", b"three"))
    store.retained_set(retained("r/1", b"uno"))
    store.retained_delete("r/2")
    store.retained_delete("r/never")
    assert commit(loop, store)
    assert sorted((m.topic, m.payload) for m in store.retained_load()) == [
        ("r/1", b"uno"), ("r/3", b"three")]


def test_retained_messages_keep_their_fields_and_load_as_retained(
        loop: Loop, store: Store) -> None:
    kept = StoredMessage("r/full", b"\x00\xff", 2, True, b"\x02\x02\x00\x00\x00\x3c", 1e9)
    store.retained_set(kept)
    # The flag of a message given to retained_set does not matter: it is retained.
    store.retained_set(StoredMessage("r/flag", b"f", 0, False))
    assert commit(loop, store)
    by_topic = {m.topic: m for m in store.retained_load()}
    assert by_topic == {"r/full": kept, "r/flag": StoredMessage("r/flag", b"f", 0, True)}


# -- Sessions -----------------------------------------------------------------------------


def test_session_load_of_a_missing_id_is_none(loop: Loop, store: Store) -> None:
    assert load(loop, store, "nobody") is None
    store.session_save(StoredSession("somebody", 10))
    assert commit(loop, store)
    assert load(loop, store, "nobody") is None
    assert load(loop, store, "Somebody") is None  # client ids are case-sensitive


def test_session_save_and_load_own_fields(loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("online", None))
    store.session_save(StoredSession("offline", 120, 1_700_000_000.25))
    store.session_save(StoredSession("zero-expiry-kept-as-given", 0))
    assert loaded(loop, store, "online") == StoredSession("online", None)
    assert load(loop, store, "offline") == StoredSession("offline", 120, 1_700_000_000.25)
    assert load(loop, store, "zero-expiry-kept-as-given") == StoredSession(
        "zero-expiry-kept-as-given", 0)


def test_session_save_replaces_own_fields_and_keeps_what_was_recorded_apart(
        loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("c1", 60, 1000.0, will=WILL, will_due_at=1005.0))
    store.subscription_set("c1", StoredSubscription("a/+", 1))
    store.delivery_add("c1", queued(1))
    store.pubrel_awaited("c1", 7)
    # The lists of a saved record are not written: only the one-by-one methods are.
    store.session_save(StoredSession(
        "c1", 300, None, subscriptions=[StoredSubscription("ignored", 0)],
        deliveries=[queued(99)], awaiting_pubrel=[99]))
    assert loaded(loop, store, "c1") == StoredSession(
        "c1", 300, None, subscriptions=[StoredSubscription("a/+", 1)],
        deliveries=[queued(1)], awaiting_pubrel=[7])


def test_session_delete_removes_everything_of_that_session_only(
        loop: Loop, store: Store) -> None:
    for cid in ("gone", "kept"):
        store.session_save(StoredSession(cid, 60, will=WILL, will_due_at=2000.0))
        store.subscription_set(cid, StoredSubscription("t/#", 2))
        store.delivery_add(cid, queued(1))
        store.delivery_add(cid, StoredDelivery(2, MESSAGE, 2, False, [], 5, "publish"))
        store.pubrel_awaited(cid, 3)
    store.retained_set(retained("r/kept"))
    assert commit(loop, store)
    before = load(loop, store, "kept")
    store.session_delete("gone")
    store.session_delete("never-saved")
    assert commit(loop, store)
    assert load(loop, store, "gone") is None
    assert load(loop, store, "kept") == before
    assert [m.topic for m in store.retained_load()] == ["r/kept"]
    # A session saved again under the same id starts empty.
    store.session_save(StoredSession("gone", 10))
    assert loaded(loop, store, "gone") == StoredSession("gone", 10)


# -- Wills --------------------------------------------------------------------------------


def test_will_is_kept_with_its_due_time_until_a_save_without_it(
        loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("w", 3600, 1000.0, will=WILL, will_due_at=1030.5))
    store.session_save(StoredSession("now", 3600, 1000.0, will=WILL))
    s = loaded(loop, store, "w")
    assert (s.will, s.will_due_at) == (WILL, 1030.5)
    s = loaded(loop, store, "now")
    assert (s.will, s.will_due_at) == (WILL, None)  # due as soon as the session is back
    # Reconnecting cancels the will: the next save has none.
    store.session_save(StoredSession("w", 3600, None))
    s = loaded(loop, store, "w")
    assert (s.will, s.will_due_at) == (None, None)


# -- Subscriptions ------------------------------------------------------------------------


def test_subscriptions_keep_their_options_in_order_of_latest_set(
        loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("c1", 60))
    full = StoredSubscription("a/+/c", 2, True, True, 2, 268_435_455)
    store.subscription_set("c1", StoredSubscription("x/#", 0))
    store.subscription_set("c1", full)
    store.subscription_set("c1", StoredSubscription("$share/g/y", 1))
    assert loaded(loop, store, "c1").subscriptions == [
        StoredSubscription("x/#", 0), full, StoredSubscription("$share/g/y", 1)]
    # Subscribing again to a filter replaces it, and it counts as the latest.
    store.subscription_set("c1", StoredSubscription("x/#", 1, identifier=4))
    assert loaded(loop, store, "c1").subscriptions == [
        full, StoredSubscription("$share/g/y", 1), StoredSubscription("x/#", 1, identifier=4)]


def test_subscription_delete(loop: Loop, store: Store) -> None:
    for cid in ("c1", "c2"):
        store.session_save(StoredSession(cid, 60))
        store.subscription_set(cid, StoredSubscription("a", 1))
        store.subscription_set(cid, StoredSubscription("b", 1))
    store.subscription_delete("c1", "a")
    store.subscription_delete("c1", "never")
    assert [s.topic_filter for s in loaded(loop, store, "c1").subscriptions] == ["b"]
    assert [s.topic_filter for s in loaded(loop, store, "c2").subscriptions] == ["a", "b"]


# -- Deliveries ---------------------------------------------------------------------------


def test_delivery_goes_queued_publish_pubrel_then_is_deleted(
        loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("c1", 60))
    store.delivery_add("c1", StoredDelivery(1, MESSAGE, 2, True, [3, 9], None, "queued"))
    [d] = loaded(loop, store, "c1").deliveries
    assert d == StoredDelivery(1, MESSAGE, 2, True, [3, 9], None, "queued")
    store.delivery_update("c1", 1, 17, "publish")
    [d] = loaded(loop, store, "c1").deliveries
    assert (d.packet_id, d.state) == (17, "publish")
    store.delivery_update("c1", 1, 17, "pubrel")
    [d] = loaded(loop, store, "c1").deliveries
    # Only packet id and state change; the message and the rest stay as added.
    assert d == StoredDelivery(1, MESSAGE, 2, True, [3, 9], 17, "pubrel")
    store.delivery_delete("c1", 1)
    assert loaded(loop, store, "c1").deliveries == []


def test_delivery_may_be_added_in_flight(loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("c1", 60))
    sent = StoredDelivery(4, MESSAGE, 1, False, [], 65535, "publish")
    store.delivery_add("c1", sent)
    assert loaded(loop, store, "c1").deliveries == [sent]


def test_deliveries_load_in_seq_order_and_same_seq_replaces(
        loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("c1", 60))
    other = StoredMessage("b", b"other", 1, True)
    for seq in (5, 2, 9):
        store.delivery_add("c1", queued(seq))
    store.delivery_add("c1", StoredDelivery(5, other, 0, True, [1], 8, "publish"))
    assert loaded(loop, store, "c1").deliveries == [
        queued(2), StoredDelivery(5, other, 0, True, [1], 8, "publish"), queued(9)]


def test_deliveries_are_per_session_and_absent_ones_are_ignored(
        loop: Loop, store: Store) -> None:
    for cid in ("c1", "c2"):
        store.session_save(StoredSession(cid, 60))
        store.delivery_add(cid, queued(1))
    store.delivery_update("c1", 1, 3, "publish")
    store.delivery_delete("c2", 1)
    store.delivery_update("c1", 404, 4, "publish")
    store.delivery_delete("c1", 405)
    assert loaded(loop, store, "c1").deliveries == [
        StoredDelivery(1, MESSAGE, 1, False, [], 3, "publish")]
    assert loaded(loop, store, "c2").deliveries == []


def test_delivery_added_and_deleted_between_commits_leaves_nothing(
        loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("c1", 60))
    store.delivery_add("c1", queued(1))
    store.delivery_update("c1", 1, 5, "publish")
    store.delivery_add("c1", queued(2))
    store.delivery_delete("c1", 1)
    assert loaded(loop, store, "c1").deliveries == [queued(2)]


def test_delivery_message_fields_are_kept(loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("c1", 60))
    bare = StoredMessage("t", b"", 0, False)
    store.delivery_add("c1", StoredDelivery(1, MESSAGE, 1, False, [], None, "queued"))
    store.delivery_add("c1", StoredDelivery(2, bare, 0, False, [268_435_455], None, "queued"))
    assert [d.message for d in loaded(loop, store, "c1").deliveries] == [MESSAGE, bare]


def test_delivery_keeps_the_shared_subscription_it_came_through(loop: Loop,
                                                                store: Store) -> None:
    store.session_save(StoredSession("c1", 60))
    store.delivery_add("c1", StoredDelivery(1, MESSAGE, 1, False, share="$share/g/t/#"))
    store.delivery_add("c1", StoredDelivery(2, MESSAGE, 1, False))
    store.delivery_update("c1", 1, 9, "publish")
    assert [d.share for d in loaded(loop, store, "c1").deliveries] == ["$share/g/t/#", None]


# -- Awaited PUBRELs ----------------------------------------------------------------------


def test_pubrel_ids_awaited_and_received(loop: Loop, store: Store) -> None:
    for cid in ("c1", "c2"):
        store.session_save(StoredSession(cid, 60))
    for pid in (300, 1, 65535, 1):
        store.pubrel_awaited("c1", pid)
    store.pubrel_awaited("c2", 300)
    assert loaded(loop, store, "c1").awaiting_pubrel == [1, 300, 65535]
    store.pubrel_received("c1", 300)
    store.pubrel_received("c1", 2)
    assert loaded(loop, store, "c1").awaiting_pubrel == [1, 65535]
    assert loaded(loop, store, "c2").awaiting_pubrel == [300]


# -- Commit -------------------------------------------------------------------------------


def test_commit_calls_back_true_once_each_in_call_order(loop: Loop, store: Store) -> None:
    assert store.healthy
    results: list[int] = []
    store.commit(lambda ok: results.append(0 if ok else -1))  # nothing recorded yet
    store.retained_set(retained("c/1"))
    store.commit(lambda ok: results.append(1 if ok else -1))
    store.commit(lambda ok: results.append(2 if ok else -1))
    store.retained_set(retained("c/2"))
    store.commit(lambda ok: results.append(3 if ok else -1))
    loop.run_until_complete(asyncio.sleep(0.5))
    assert results == [0, 1, 2, 3]
    assert store.healthy


def test_a_session_loaded_from_a_commit_callback_has_the_committed_changes(
        loop: Loop, store: Store) -> None:
    store.session_save(StoredSession("c1", 60))
    store.subscription_set("c1", StoredSubscription("seen", 1))
    loads: list[tuple[bool, asyncio.Task[StoredSession | None]]] = []
    store.commit(lambda ok: loads.append((ok, loop.create_task(store.session_load("c1")))))
    wait_for(loop, lambda: bool(loads) and loads[0][1].done())
    [(ok, task)] = loads
    session = task.result()
    assert ok and session is not None
    assert session.subscriptions == [StoredSubscription("seen", 1)]


# -- Loading everything at start (BulkLoad) -----------------------------------------------


def test_sessions_load_returns_every_session_as_session_load_does(
        loop: Loop, store: Store) -> None:
    assert isinstance(store, BulkLoad)
    assert store.sessions_load() == []
    for i, cid in enumerate(("a", "b", "c")):
        store.session_save(StoredSession(cid, 60 * i, will=WILL if i else None))
        store.subscription_set(cid, StoredSubscription(f"{cid}/#", i))
        store.delivery_add(cid, queued(i + 1))
        store.pubrel_awaited(cid, i + 1)
    store.session_delete("b")
    assert commit(loop, store)
    everything = sorted(store.sessions_load(), key=lambda s: s.client_id)
    assert [s.client_id for s in everything] == ["a", "c"]
    assert everything == [load(loop, store, "a"), load(loop, store, "c")]


# -- Ownership of records -----------------------------------------------------------------


def test_the_store_keeps_its_own_copies(loop: Loop, store: Store) -> None:
    message = StoredMessage("m", b"m", 1, False)
    delivery = StoredDelivery(1, message, 1, False, [1], None, "queued")
    will = StoredMessage("w", b"w", 0, False)
    sub = StoredSubscription("s", 1)
    store.session_save(StoredSession("c1", 60, will=will))
    store.subscription_set("c1", sub)
    store.delivery_add("c1", delivery)
    kept = retained("r")
    store.retained_set(kept)
    assert commit(loop, store)
    # Changing what was given, or what was loaded, changes nothing stored.
    delivery.subscription_ids.append(2)
    delivery.state = "publish"
    message.payload = will.payload = kept.payload = b"changed"
    sub.qos = 0
    first = load(loop, store, "c1")
    assert first is not None
    first.deliveries[0].message.payload = b"changed"
    first.subscriptions.clear()
    first.awaiting_pubrel.append(1)
    next(iter(store.retained_load())).payload = b"changed"
    assert load(loop, store, "c1") == StoredSession(
        "c1", 60, subscriptions=[StoredSubscription("s", 1)],
        deliveries=[StoredDelivery(1, StoredMessage("m", b"m", 1, False), 1, False, [1])],
        will=StoredMessage("w", b"w", 0, False))
    assert [m.payload for m in store.retained_load()] == [b"x"]
