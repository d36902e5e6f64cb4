"""The embedded durable store: SQLite in WAL mode under the data directory.

Writes are staged in memory as SQL statements and committed in groups by one writer
thread: while a commit is running, new statements and their callbacks gather into the
next batch, so under load each fsync covers many messages and at low load a commit
starts at once (no fixed delay). ``commit(callback)`` calls back on the event loop once
everything staged before it is on disk, or with False if the batch could not be written
(disk full, read-only file system); the batch is then retried until it succeeds, and
``healthy`` is False meanwhile so the engine can refuse new durable work up front.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from roost.engine.records import (
    StoredDelivery,
    StoredMessage,
    StoredSession,
    StoredSubscription,
)
from roost.engine.store import StoreUnavailable

log = logging.getLogger("roost.store")

DB_NAME = "roost.db"
SCHEMA_VERSION = 2
RETRY_SECONDS = 1.0

# Each entry upgrades the schema from version i to i + 1; never edit a released one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE retained (
        topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL,
        props BLOB NOT NULL, expires_at REAL);
    CREATE TABLE sessions (
        client_id TEXT PRIMARY KEY, expiry_interval INTEGER, disconnected_at REAL,
        will_topic TEXT, will_payload BLOB, will_qos INTEGER, will_retain INTEGER,
        will_props BLOB, will_expires_at REAL, will_due_at REAL);
    CREATE TABLE subscriptions (
        client_id TEXT NOT NULL, topic_filter TEXT NOT NULL, qos INTEGER NOT NULL,
        no_local INTEGER NOT NULL, retain_as_published INTEGER NOT NULL,
        retain_handling INTEGER NOT NULL, identifier INTEGER,
        PRIMARY KEY (client_id, topic_filter));
    CREATE TABLE deliveries (
        client_id TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL,
        payload BLOB NOT NULL, message_qos INTEGER NOT NULL, message_retain INTEGER NOT NULL,
        props BLOB NOT NULL, expires_at REAL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
        subscription_ids TEXT NOT NULL, packet_id INTEGER, state TEXT NOT NULL,
        PRIMARY KEY (client_id, seq));
    CREATE TABLE awaiting_pubrel (
        client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
        PRIMARY KEY (client_id, packet_id));
    """,
    # 2: the shared subscription a delivery came through, so that it can go back to its
    # group after a restart (MQTT 5 4.8.2).
    """
    ALTER TABLE deliveries ADD COLUMN share TEXT;
    """,
]


class StoreError(Exception):
    """The store cannot be opened; the message names the file and what is wrong."""


Statement = tuple[str, tuple[Any, ...]]


class SqliteStore:
    """The ``Store`` port and its ``BulkLoad`` capability on one SQLite file."""

    def __init__(self, data_dir: str | Path, loop: asyncio.AbstractEventLoop,
                 durability: str = "strict") -> None:
        self.path = Path(data_dir) / DB_NAME
        self._loop = loop
        self.relaxed = durability == "relaxed"
        self._pending: list[Statement | None] = []
        # Positions in _pending of the writes to each delivery row, so a delivery
        # acknowledged before its batch left need not be written at all (see
        # delivery_delete); reset whenever _pending is handed to the writer.
        self._delivery_writes: dict[tuple[str, int], list[int]] = {}
        self._callbacks: list[Callable[[bool], None]] = []
        self._busy = False
        self._closed = False
        self.healthy = True
        self.commits = 0
        self.last_batch = 0
        self.last_commit_seconds = 0.0
        # Sum of all commits' seconds (with ``commits``: a summary for metrics).
        self.commit_seconds_total = 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roost-store")
        self._lock = threading.Lock()
        self._db = self._open()

    # -- Opening, checking and migrating -------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db: sqlite3.Connection | None = None
        try:
            if self.path.exists():
                self._check()
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'NORMAL' if self.relaxed else 'FULL'}")
            version = self._version(db)
            for target in range(version, SCHEMA_VERSION):
                log.info("migrating %s to data format version %d", self.path, target + 1)
                db.executescript("BEGIN;" + MIGRATIONS[target] + ";"
                                 "INSERT OR REPLACE INTO meta VALUES ('schema_version', "
                                 f"'{target + 1}'); COMMIT;")
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            raise StoreError(f"{self.path}: cannot open the database ({exc}); it was left "
                             "untouched: restore it from a backup or move it away") from exc
        return db

    def _check(self) -> None:
        """Check an existing database through a read-only connection, so that a damaged
        or too new one is left exactly as it is: a read-write connection would switch its
        journal mode and, on close, checkpoint a write-ahead log left by a crash into it
        (and delete the log)."""
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise StoreError(f"{self.path}: database is corrupt ({result}); it was "
                                 "left untouched: restore it from a backup or move it away")
            version = self._version(db)
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: data format version {version} is newer than "
                                 f"this Roost understands ({SCHEMA_VERSION}); upgrade Roost")
        finally:
            db.close()

    @staticmethod
    def _version(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone()
        if row is None:
            return 0
        value = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(value[0]) if value else 0

    # -- Staging writes -------------------------------------------------------------

    def _stage(self, sql: str, *params: Any) -> None:
        self._pending.append((sql, params))

    def _stage_delivery(self, client_id: str, seq: int, sql: str, *params: Any) -> None:
        self._delivery_writes.setdefault((client_id, seq), []).append(len(self._pending))
        self._pending.append((sql, params))

    def retained_set(self, message: StoredMessage) -> None:
        self._stage("INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?)", message.topic,
                    message.payload, message.qos, message.properties, message.expires_at)

    def retained_delete(self, topic: str) -> None:
        self._stage("DELETE FROM retained WHERE topic = ?", topic)

    def session_save(self, s: StoredSession) -> None:
        """Write a session's own row (not its subscriptions or queue)."""
        w = s.will
        self._stage("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    s.client_id, s.expiry_interval, s.disconnected_at,
                    w.topic if w else None, w.payload if w else None, w.qos if w else None,
                    int(w.retain) if w else None, w.properties if w else None,
                    w.expires_at if w else None, s.will_due_at)

    def session_delete(self, client_id: str) -> None:
        for table in ("sessions", "subscriptions", "deliveries", "awaiting_pubrel"):
            self._stage(f"DELETE FROM {table} WHERE client_id = ?", client_id)

    def subscription_set(self, client_id: str, sub: StoredSubscription) -> None:
        self._stage("INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    client_id, sub.topic_filter, sub.qos, int(sub.no_local),
                    int(sub.retain_as_published), sub.retain_handling, sub.identifier)

    def subscription_delete(self, client_id: str, topic_filter: str) -> None:
        self._stage("DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?",
                    client_id, topic_filter)

    def delivery_add(self, client_id: str, d: StoredDelivery) -> None:
        m = d.message
        self._stage_delivery(client_id, d.seq, "INSERT OR REPLACE INTO deliveries VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    client_id, d.seq, m.topic, m.payload, m.qos, int(m.retain), m.properties,
                    m.expires_at, d.qos, int(d.retain),
                    ",".join(map(str, d.subscription_ids)), d.packet_id, d.state, d.share)

    def delivery_update(self, client_id: str, seq: int, packet_id: int | None,
                        state: str) -> None:
        self._stage_delivery(client_id, seq, "UPDATE deliveries SET packet_id = ?, state = ? "
                             "WHERE client_id = ? AND seq = ?", packet_id, state, client_id, seq)

    def delivery_delete(self, client_id: str, seq: int) -> None:
        # Writes to this row still waiting here would be undone by the delete: skip them
        # (an online persistent subscriber often acknowledges before the batch leaves).
        # The delete itself stays, for a row an earlier batch may have written.
        pending = self._pending
        for i in self._delivery_writes.pop((client_id, seq), ()):
            pending[i] = None
        self._stage("DELETE FROM deliveries WHERE client_id = ? AND seq = ?", client_id, seq)

    def pubrel_awaited(self, client_id: str, packet_id: int) -> None:
        self._stage("INSERT OR REPLACE INTO awaiting_pubrel VALUES (?, ?)", client_id, packet_id)

    def pubrel_received(self, client_id: str, packet_id: int) -> None:
        self._stage("DELETE FROM awaiting_pubrel WHERE client_id = ? AND packet_id = ?",
                    client_id, packet_id)

    # -- Loading -------------------------------------------------------------------------

    def retained_load(self) -> Iterable[StoredMessage]:
        rows = self._db.execute("SELECT topic, payload, qos, props, expires_at FROM retained")
        return [StoredMessage(t, p, q, True, pr, e) for t, p, q, pr, e in rows]

    def sessions_load(self) -> list[StoredSession]:
        """Every session (``BulkLoad``), read on the calling thread: only at start."""
        return self._read_sessions("", ())

    async def session_load(self, client_id: str) -> StoredSession | None:
        """One session, read on the writer thread, so after every batch already handed
        to it and without blocking the event loop."""
        try:
            found = await self._loop.run_in_executor(
                self._executor, self._read_one, client_id)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{self.path}: cannot read session {client_id!r} "
                                   f"({exc})") from exc
        return found

    def _read_one(self, client_id: str) -> StoredSession | None:
        with self._lock:
            found = self._read_sessions("WHERE client_id = ?", (client_id,))
        return found[0] if found else None

    def _read_sessions(self, where: str, params: tuple[Any, ...]) -> list[StoredSession]:
        """Sessions with their rows; ``where`` (empty or on ``client_id``) selects them."""
        db = self._db
        sessions: dict[str, StoredSession] = {}
        for row in db.execute(f"SELECT * FROM sessions {where}", params):
            (cid, expiry, disc, wt, wp, wq, wr, wprops, wexp, wdue) = row
            will = StoredMessage(wt, wp, wq, bool(wr), wprops, wexp) if wt is not None else None
            sessions[cid] = StoredSession(cid, expiry, disc, will=will, will_due_at=wdue)
        if not sessions:
            return []
        for cid, f, q, nl, rap, rh, ident in db.execute(
                f"SELECT * FROM subscriptions {where} ORDER BY rowid", params):
            if cid in sessions:
                sessions[cid].subscriptions.append(
                    StoredSubscription(f, q, bool(nl), bool(rap), rh, ident))
        for row in db.execute(
                f"SELECT * FROM deliveries {where} ORDER BY client_id, seq", params):
            (cid, seq, topic, payload, mq, mr, props, exp, q, r, ids, pid, state, share) = row
            if cid in sessions:
                sessions[cid].deliveries.append(StoredDelivery(
                    seq, StoredMessage(topic, payload, mq, bool(mr), props, exp), q, bool(r),
                    [int(i) for i in ids.split(",") if i], pid, state, share))
        for cid, pid in db.execute(
                f"SELECT * FROM awaiting_pubrel {where} ORDER BY client_id, packet_id", params):
            if cid in sessions:
                sessions[cid].awaiting_pubrel.append(pid)
        return list(sessions.values())

    # -- Group commit ---------------------------------------------------------------

    def commit(self, callback: Callable[[bool], None]) -> None:
        if self.relaxed or not (self._busy or self._pending):
            # Relaxed, or nothing staged and nothing in flight: everything recorded so
            # far is already durable (most QoS 1 messages to clean sessions stage nothing).
            callback(True)
            if not self._pending:
                return
        else:
            self._callbacks.append(callback)
        if not self._busy:
            self._busy = True
            self._loop.call_soon(self._start_batch)

    def _start_batch(self) -> None:
        batch = [st for st in self._pending if st is not None]
        self._pending = []
        self._delivery_writes.clear()
        if not batch:
            # Nothing new to write: what these callbacks wait for was in the batch that
            # just succeeded, so answer them in order without a trip to the writer.
            callbacks, self._callbacks = self._callbacks, []
            self._busy = False
            for cb in callbacks:
                cb(True)
            return
        callbacks, self._callbacks = self._callbacks, []
        future = self._loop.run_in_executor(self._executor, self._write, batch)
        future.add_done_callback(lambda f: self._finished(f, batch, callbacks))

    def _write(self, batch: list[Statement]) -> float:
        started = time.perf_counter()
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN")
                for sql, params in batch:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return time.perf_counter() - started

    def _finished(self, future: asyncio.Future[float], batch: list[Statement],
                  callbacks: list[Callable[[bool], None]]) -> None:
        exc = future.exception()
        if exc is None:
            if not self.healthy:
                log.warning("store %s: writes succeed again", self.path)
            self.healthy = True
            self.commits += 1
            self.last_batch = len(batch)
            self.last_commit_seconds = future.result()
            self.commit_seconds_total += self.last_commit_seconds
            for cb in callbacks:
                cb(True)
            self._start_batch()
            return
        if self.healthy:
            log.error("store %s: commit failed (%s); refusing durable work and retrying "
                      "every %.0f s", self.path, exc, RETRY_SECONDS)
        self.healthy = False
        for cb in callbacks:
            cb(False)
        # Keep the failed statements (they are idempotent) ahead of newer ones and retry.
        self._pending = [*batch, *self._pending]
        self._delivery_writes.clear()  # positions moved: no more skipping for these
        if self._closed:
            self._busy = False
            return
        self._loop.call_later(RETRY_SECONDS, self._start_batch)

    def flush_sync(self) -> bool:
        """Write everything staged now, blocking (used at shutdown)."""
        batch = [st for st in self._pending if st is not None]
        self._pending = []
        self._delivery_writes.clear()
        callbacks, self._callbacks = self._callbacks, []
        try:
            if batch:
                self._write(batch)
            ok = True
        except sqlite3.Error as exc:
            log.error("store %s: final commit failed: %s", self.path, exc)
            ok = False
        for cb in callbacks:
            cb(ok)
        return ok

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True)
        self.flush_sync()
        self._db.close()
