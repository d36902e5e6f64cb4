"""The SQLite store on its own, driven from a real asyncio loop: the schema, durability
across reopening, refusing files it must not touch, commit callbacks, group commit, and
failing writes. What every store must do is in ``test_store_contract.py``."""

from __future__ import annotations

import asyncio
import errno
import gc
import hashlib
import os
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from roost.engine.records import (
    StoredDelivery,
    StoredMessage,
    StoredSession,
    StoredSubscription,
)
from roost.engine.store import StoreUnavailable
from roost.store.sqlite import DB_NAME, MIGRATIONS, SCHEMA_VERSION, SqliteStore, StoreError
from tests.faults import tmpfs
from tests.store.support import commit, load, retained, wait_for


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Query through a separate connection, as another process would see the file."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# -- Schema and opening ---------------------------------------------------------------


def test_new_store_creates_the_current_schema(tmp_path: Path, loop) -> None:
    store = SqliteStore(tmp_path / "data", loop)
    try:
        path = tmp_path / "data" / DB_NAME
        assert store.path == path
        assert SCHEMA_VERSION == 2
        assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
        tables = {name for (name,) in rows(path, "SELECT name FROM sqlite_master "
                                                 "WHERE type = 'table'")}
        assert {"meta", "retained", "sessions", "subscriptions", "deliveries",
                "awaiting_pubrel"} <= tables
        assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        store.close()
    # Opening again neither migrates again nor fails.
    SqliteStore(tmp_path / "data", loop).close()
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]


def test_version_1_database_is_migrated_and_keeps_its_deliveries(tmp_path: Path,
                                                                 loop) -> None:
    """A data directory of the previous release: version 1, without the share column."""
    path = tmp_path / DB_NAME
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "INSERT INTO meta VALUES ('schema_version', '1');"
                     "INSERT INTO sessions VALUES ('old', NULL, 1.0, NULL, NULL, NULL, "
                     "NULL, NULL, NULL, NULL);"
                     "INSERT INTO deliveries VALUES ('old', 7, 't', x'6d', 1, 0, x'00', "
                     "NULL, 1, 0, '', NULL, 'queued');")
    db.close()
    store = SqliteStore(tmp_path, loop)
    try:
        [session] = store.sessions_load()
        [delivery] = session.deliveries
        assert (delivery.seq, delivery.message.payload, delivery.share) == (7, b"m", None)
        assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
    finally:
        store.close()


def test_everything_committed_loads_the_same_after_reopening(tmp_path: Path, loop) -> None:
    """Durability only: what each write means is the contract suite's business
    (``test_store_contract.py``, run against SQLite too)."""
    store = SqliteStore(tmp_path, loop)
    will = StoredMessage("will/t", b"bye", 1, False, b"\x00", None)
    store.session_save(StoredSession("c1", 120, 1000.0, will=will, will_due_at=1010.0))
    store.subscription_set("c1", StoredSubscription("a/+", 1, True, False, 1, 7))
    store.subscription_set("c1", StoredSubscription("b/#", 2))
    message = StoredMessage("a/x", b"\x00\xffpayload", 2, False, b"\x00", 5000.0)
    store.delivery_add("c1", StoredDelivery(1, message, 1, False, [7], None, "queued"))
    store.delivery_add("c1", StoredDelivery(2, message, 2, False, [], None, "queued"))
    store.delivery_update("c1", 2, 9, "pubrel")
    store.pubrel_awaited("c1", 33)
    store.session_save(StoredSession("c2", None))
    store.retained_set(retained("r/1", b"one"))
    assert commit(loop, store)
    before = (store.sessions_load(), list(store.retained_load()))
    assert len(before[0]) == 2 and before[0][0].deliveries
    store.close()

    store = SqliteStore(tmp_path, loop)
    try:
        assert (store.sessions_load(), list(store.retained_load())) == before
        assert load(loop, store, "c1") == next(s for s in before[0] if s.client_id == "c1")
    finally:
        store.close()


def test_session_load_reads_on_the_writer_thread_after_the_batch_in_flight(
        tmp_path: Path, loop) -> None:
    """Asked while a batch is being written, the read waits for it (and sees it) without
    holding up the event loop."""
    store = SqliteStore(tmp_path, loop)
    try:
        store.session_save(StoredSession("c1", 60))
        store.subscription_set("c1", StoredSubscription("first", 1))
        results: list[bool] = []
        with store._lock:  # the writer thread waits for this: the batch stays in flight
            store.commit(results.append)
            wait_for(loop, lambda: not store._pending)  # the batch has left
            task = loop.create_task(store.session_load("c1"))
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                for _ in range(5):
                    await asyncio.sleep(0.005)
                    ticks += 1

            loop.run_until_complete(tick())
            assert ticks == 5 and not task.done()
        wait_for(loop, task.done)
        session = task.result()
        assert session is not None
        assert [s.topic_filter for s in session.subscriptions] == ["first"]
        assert results == [True]
    finally:
        store.close()


def test_session_load_that_cannot_read_raises_store_unavailable(
        tmp_path: Path, loop) -> None:
    store = SqliteStore(tmp_path, loop)
    try:
        store.session_save(StoredSession("c1", 60))
        assert commit(loop, store)
        other = sqlite3.connect(store.path)
        other.execute("DROP TABLE subscriptions")
        other.commit()
        other.close()
        with pytest.raises(StoreUnavailable) as info:
            load(loop, store, "c1")
        assert str(store.path) in str(info.value) and "c1" in str(info.value)
    finally:
        store.close()


def test_newer_data_format_is_refused_and_left_alone(tmp_path: Path, loop) -> None:
    SqliteStore(tmp_path, loop).close()
    path = tmp_path / DB_NAME
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    before = digest(path)
    with pytest.raises(StoreError) as info:
        SqliteStore(tmp_path, loop)
    message = str(info.value)
    assert str(path) in message and "99" in message, message
    del info
    gc.collect()  # whatever the failed open left behind is closed by now
    assert digest(path) == before
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("99",)]


def test_garbage_file_is_refused_and_left_untouched(tmp_path: Path, loop) -> None:
    path = tmp_path / DB_NAME
    garbage = random.Random(1).randbytes(64 * 1024)
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as info:
        SqliteStore(tmp_path, loop)
    assert str(path) in str(info.value), str(info.value)
    del info
    gc.collect()
    assert path.read_bytes() == garbage


def test_damaged_database_and_its_wal_are_left_untouched(tmp_path: Path, loop) -> None:
    """A crash leaves a write-ahead log; if the main file is then found damaged, opening
    must not checkpoint the log into it (nor delete the log, which holds recent data)."""
    live = tmp_path / "live"
    store = SqliteStore(live, loop)
    for i in range(300):
        store.retained_set(retained(f"t/{i}", b"x" * 500))
    assert commit(loop, store)
    store.close()  # checkpointed: the rows are in the main file
    store = SqliteStore(live, loop)
    store.retained_set(retained("t/new", b"y" * 500))
    assert commit(loop, store)
    crashed = tmp_path / "crashed"
    shutil.copytree(live, crashed)  # a copy taken while open, as after kill -9
    store.close()
    path = crashed / DB_NAME
    wal = crashed / (DB_NAME + "-wal")
    assert wal.stat().st_size > 0, "the copy should hold a write-ahead log"
    data = bytearray(path.read_bytes())
    data[20 * 4096:22 * 4096] = random.Random(2).randbytes(2 * 4096)
    path.write_bytes(bytes(data))
    before_db, before_wal = digest(path), digest(wal)

    with pytest.raises(StoreError) as info:
        SqliteStore(crashed, loop)
    assert str(path) in str(info.value), str(info.value)
    del info
    gc.collect()  # whatever the failed open left behind is closed by now
    assert digest(path) == before_db
    assert wal.exists() and digest(wal) == before_wal


# -- Commits ----------------------------------------------------------------------------


def test_commit_calls_back_after_the_data_is_visible_to_others(tmp_path: Path, loop) -> None:
    store = SqliteStore(tmp_path, loop)
    try:
        path = store.path
        seen: list[tuple[bool, list[tuple[object, ...]]]] = []
        store.retained_set(retained("seen/1", b"payload"))
        store.commit(lambda ok: seen.append(
            (ok, rows(path, "SELECT topic, payload FROM retained"))))
        # Staged but not yet committed: nobody else sees it.
        assert rows(path, "SELECT topic FROM retained") == []
        wait_for(loop, lambda: bool(seen))
        assert seen == [(True, [("seen/1", b"payload")])]
        assert store.healthy
    finally:
        store.close()


def test_many_commits_in_one_turn_share_one_write(tmp_path: Path, loop) -> None:
    store = SqliteStore(tmp_path, loop)
    try:
        results: list[bool] = []

        def burst() -> None:
            for i in range(1000):
                store.retained_set(retained(f"burst/{i}", str(i).encode()))
                store.commit(results.append)

        loop.call_soon(burst)
        wait_for(loop, lambda: len(results) == 1000)
        print(f"\n1000 commit() calls in one turn -> {store.commits} write(s)")
        assert results == [True] * 1000
        assert 1 <= store.commits <= 5
        assert rows(store.path, "SELECT count(*) FROM retained") == [(1000,)]
    finally:
        store.close()


def test_delivery_acknowledged_before_its_batch_leaves_is_never_written(
        tmp_path: Path, loop) -> None:
    """Add, update and delete of one delivery row in the same batch: the insert (with
    its payload) and the update are skipped, the delete stays."""
    store = SqliteStore(tmp_path, loop)
    try:
        message = StoredMessage("a/x", b"p" * 1000, 1, False, b"\x00", None)
        store.delivery_add("c1", StoredDelivery(1, message, 1, False, [], None, "queued"))
        store.delivery_update("c1", 1, 5, "publish")
        store.delivery_add("c1", StoredDelivery(2, message, 1, False, [], None, "queued"))
        store.delivery_delete("c1", 1)
        assert commit(loop, store)
        assert store.last_batch == 2  # the insert of seq 2 and the delete of seq 1
        assert rows(store.path, "SELECT seq FROM deliveries") == [(2,)]
    finally:
        store.close()


def test_delete_of_a_row_from_an_earlier_batch_is_still_written(
        tmp_path: Path, loop) -> None:
    """A row committed before, replaced and updated in the open batch, then deleted:
    skipping the new writes must not leave the old row behind."""
    store = SqliteStore(tmp_path, loop)
    try:
        message = StoredMessage("a/x", b"p", 1, False, b"\x00", None)
        store.delivery_add("c1", StoredDelivery(1, message, 1, False, [], None, "queued"))
        assert commit(loop, store)
        store.delivery_add("c1", StoredDelivery(1, message, 1, False, [], 3, "publish"))
        store.delivery_update("c1", 1, 3, "pubrel")
        store.delivery_delete("c1", 1)
        assert commit(loop, store)
        assert rows(store.path, "SELECT count(*) FROM deliveries") == [(0,)]
        store.close()
        store = SqliteStore(tmp_path, loop)
        assert store.sessions_load() == []
    finally:
        store.close()


def test_delete_while_the_insert_is_being_written(tmp_path: Path, loop) -> None:
    """The insert already left with a batch: the delete goes in the next one."""
    store = SqliteStore(tmp_path, loop)
    try:
        message = StoredMessage("a/x", b"p", 1, False, b"\x00", None)
        results: list[bool] = []
        store.delivery_add("c1", StoredDelivery(1, message, 1, False, [], None, "queued"))
        with store._lock:  # the writer thread waits for this: the batch stays in flight
            store.commit(results.append)
            wait_for(loop, lambda: not store._pending)  # the batch has left
            store.delivery_delete("c1", 1)
            store.commit(results.append)
            assert results == []
        wait_for(loop, lambda: len(results) == 2)
        assert results == [True, True]
        assert rows(store.path, "SELECT count(*) FROM deliveries") == [(0,)]
    finally:
        store.close()


def test_commits_arriving_during_a_write_are_grouped(tmp_path: Path, loop) -> None:
    """A steady stream, one message per loop turn: while a write runs, later messages
    gather into the next batch instead of each waiting for its own fsync."""
    store = SqliteStore(tmp_path, loop)
    try:
        results: list[bool] = []

        async def stream() -> None:
            for i in range(3000):
                store.retained_set(retained(f"stream/{i}", b"x" * 100))
                store.commit(results.append)
                await asyncio.sleep(0)

        loop.run_until_complete(stream())
        wait_for(loop, lambda: len(results) == 3000)
        print(f"\n3000 messages over 3000 turns -> {store.commits} writes")
        assert results == [True] * 3000
        assert store.commits < 1500
        assert rows(store.path, "SELECT count(*) FROM retained") == [(3000,)]
    finally:
        store.close()


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory`` up to the last byte."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (64 * 1024, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def test_failed_writes_report_false_then_are_retried(tmp_path: Path, loop) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        store = SqliteStore(mnt / "data", loop)
        try:
            store.retained_set(retained("before", b"small"))
            assert commit(loop, store)
            commits = store.commits
            filler = fill(mnt)

            big = b"B" * (256 * 1024)
            store.retained_set(retained("big", big))
            assert commit(loop, store) is False
            assert store.healthy is False
            assert store.commits == commits
            # Still failing: a commit asked for meanwhile fails at the next retry too.
            store.retained_set(retained("during", b"d"))
            assert commit(loop, store, timeout=3.0) is False
            assert not store.healthy
            assert rows(store.path, "SELECT topic FROM retained ORDER BY topic") == [
                ("before",)]

            filler.unlink()
            took = wait_for(loop, lambda: store.healthy, timeout=3.0)
            print(f"\nhealthy again {took:.2f} s after space was freed")
            # The failed statements were kept and written by the retry.
            assert rows(store.path, "SELECT topic, length(payload) FROM retained "
                                    "ORDER BY topic") == [("before", 5), ("big", len(big)),
                                                          ("during", 1)]
            store.retained_set(retained("after", b"a"))
            assert commit(loop, store)
            assert store.commits > commits
        finally:
            store.close()
