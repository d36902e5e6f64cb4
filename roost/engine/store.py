"""The engine's durable-state port (``Store``), its optional bulk-load capability
(``BulkLoad``), and the in-memory implementation (``MemoryStore``).

The engine records every change that must survive a restart through a ``Store`` and
asks it to ``commit`` before sending an acknowledgement that promises durability. The
in-memory store keeps the same state as the SQLite store (``roost.store.sqlite``) and
commits at once; the SQLite store batches commits and calls back once the data is on
disk. ``tests/store/test_store_contract.py`` holds both to the contract written here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol, runtime_checkable

from roost.engine.records import (
    StoredDelivery,
    StoredMessage,
    StoredSession,
    StoredSubscription,
)


class StoreUnavailable(Exception):
    """A read the store cannot answer now (I/O error, lost connection); distinct from
    an answer of "nothing stored"."""


class Store(Protocol):
    """Where the engine keeps what must outlive the process (the required port).

    **Writes record, ``commit`` makes durable.** Every write method returns at once,
    raises nothing for a storage failure and returns nothing: it records the change,
    and the change is durable once a later ``commit`` calls back with True. A failure
    to store shows as ``commit`` calling back False and ``healthy`` turning False.
    Changes take effect in the order they were recorded. A write of something absent
    (a delete or update of a row that does not exist) does nothing.

    **Keys.** A session is keyed by client id. Inside it, a subscription is keyed by
    its topic filter (including any ``$share/group/`` prefix), a delivery by its
    ``seq`` (see ``StoredDelivery``), an awaited PUBREL by its packet id. Retained
    messages are keyed by topic. Subscriptions, deliveries and PUBREL ids are recorded
    only for a client whose session was saved (``session_save`` first) and not deleted
    since; anything else is outside the contract.

    **Time.** Every stored time is wall-clock seconds since the epoch (``time.time()``
    scale), never monotonic, so expiry keeps counting while the broker is down;
    intervals are whole seconds. The engine converts (``persistence.Converter``).

    **Ownership.** A store keeps its own copy of what it is given and returns records
    the caller owns: mutating either afterwards changes nothing in the store.

    **Two representations fit this port.** The SQLite store keeps a row per session,
    subscription, delivery (with its message) and awaited PUBREL. A cluster store in
    the shape of ``cluster.md`` §3 stores each QoS 1/2 message once in a stream and
    keeps per session one record (client id → owner, expiry, subscriptions, will,
    QoS 2 state, cursor) where the queue is a cursor (stream sequence) plus the set of
    sequences acknowledged above it. Method by method, such a store would:

    - ``session_save``: update the session record (CAS on its revision);
      ``session_delete``: delete the record, which drops cursor and acknowledged set
      with it; ``session_load``: read the record and rebuild the queue by reading the
      stream from the cursor, skipping acknowledged sequences and messages that match
      none of the session's subscriptions.
    - ``subscription_set`` / ``subscription_delete``: update the record's list.
    - ``delivery_add`` of a message already in the stream records only its stream
      sequence against the delivery's ``seq`` (nothing at all for a ``queued`` one the
      cursor implies); a message that is not in the stream (a retained message sent at
      SUBSCRIBE, a queued QoS 0 message) is stored with the session, as SQLite does.
    - ``delivery_update``: record the outbound packet id and state in the record
      (cluster.md: "outbound QoS 2 packet ids are written before sending").
    - ``delivery_delete``: add the delivery's stream sequence to the acknowledged set
      and advance the cursor over the acknowledged run above it.
    - ``pubrel_awaited`` / ``pubrel_received``: the inbound QoS 2 state in the record.
    - ``retained_*``: the retained stream, one message per topic (delete: a tombstone);
      ``retained_load``: the index read when the store was opened.
    - ``commit``: call back when every JetStream publish and KV update recorded before
      it is acknowledged by a majority; never await one round trip per message.

    What the port does not carry yet is the message's stream sequence itself: when a
    cluster ingest assigns one, ``StoredMessage`` gains an optional field for it (the
    embedded stores ignore it). Nor does it say how a lost CAS (the session taken over
    by another node meanwhile) reaches the engine: that belongs with the session
    directory of the two-phase CONNECT.
    """

    @property
    def healthy(self) -> bool:
        """False while writes are failing (disk full, read-only, no majority): the engine
        refuses durable work up front. Turns True again by itself once a retried write
        succeeds."""
        ...

    def retained_set(self, message: StoredMessage) -> None:
        """Record ``message`` as the retained message of its topic, replacing any."""
        ...

    def retained_delete(self, topic: str) -> None:
        """Record that ``topic`` has no retained message."""
        ...

    def retained_load(self) -> Iterable[StoredMessage]:
        """Every retained message, in no particular order, each with ``retain`` True.

        Called once at start, before any write; it may raise the implementation's error
        if the data cannot be read (the broker then does not start)."""
        ...

    def session_save(self, session: StoredSession) -> None:
        """Record a session's own fields (``expiry_interval``, ``disconnected_at``,
        ``will``, ``will_due_at``), replacing earlier ones. Its ``subscriptions``,
        ``deliveries`` and ``awaiting_pubrel`` are ignored: those are recorded one by
        one through the methods below and survive a later ``session_save``."""
        ...

    def session_delete(self, client_id: str) -> None:
        """Record that the session is gone, with its subscriptions, deliveries and
        awaited PUBREL ids."""
        ...

    async def session_load(self, client_id: str) -> StoredSession | None:
        """The session of ``client_id`` with everything recorded for it, or None if
        no session is stored under that id.

        It reflects at least every change whose ``commit`` had called back True before
        the call (the memory store: every change recorded). ``subscriptions`` come in
        the order of their latest ``subscription_set``, ``deliveries`` in ascending
        ``seq``, ``awaiting_pubrel`` ascending. Raises ``StoreUnavailable`` if the
        store cannot be read: None always means "not stored". Asynchronous because a
        cluster store reads over the network; the SQLite store reads on its writer
        thread, not on the event loop. Not to be called after ``close``."""
        ...

    def subscription_set(self, client_id: str, sub: StoredSubscription) -> None:
        """Record a subscription of the session, replacing one with the same filter
        (which then counts as the latest, for the order ``session_load`` returns)."""
        ...

    def subscription_delete(self, client_id: str, topic_filter: str) -> None:
        """Record that the session no longer has the subscription ``topic_filter``."""
        ...

    def delivery_add(self, client_id: str, delivery: StoredDelivery) -> None:
        """Record an entry of the session's outgoing queue, replacing one with the same
        ``seq``. It may arrive already in state ``publish`` with its packet id."""
        ...

    def delivery_update(self, client_id: str, seq: int, packet_id: int | None,
                        state: str) -> None:
        """Record a delivery's new packet id and state (``publish`` once sent,
        ``pubrel`` once PUBREC came); the message and the rest stay as added."""
        ...

    def delivery_delete(self, client_id: str, seq: int) -> None:
        """Record that a delivery is done (acknowledged, expired or dropped)."""
        ...

    def pubrel_awaited(self, client_id: str, packet_id: int) -> None:
        """Record that an incoming QoS 2 message with ``packet_id`` was stored and
        acknowledged with PUBREC, so its PUBREL is awaited (idempotent)."""
        ...

    def pubrel_received(self, client_id: str, packet_id: int) -> None:
        """Record that the PUBREL for ``packet_id`` came: the id is free again."""
        ...

    def commit(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(True)`` once every change recorded so far is durable, or
        ``callback(False)`` if it could not be made durable (the store keeps retrying
        and ``healthy`` is False meanwhile).

        The callback is called exactly once, on the event loop's thread: either at
        once, inside this call (always for the memory store; for others when nothing
        is waiting to be written), or later from the loop. Callbacks are called in the
        order their ``commit`` calls were made. Never raises."""
        ...

    def close(self) -> None:
        """Write what is still recorded, if the store can (blocking), and release the
        store; no method may be called afterwards."""
        ...


@runtime_checkable
class BulkLoad(Protocol):
    """Optional capability of an embedded store: every session at once, at start.

    A store that holds all sessions locally (SQLite, memory) offers it, and the engine
    then resumes them all when it starts (``Engine.restore``). A store shared by a
    cluster does not: there a session is read with ``Store.session_load`` by the node
    its client connects to. Test for it with ``isinstance(store, BulkLoad)``.
    """

    def sessions_load(self) -> list[StoredSession]:
        """Every stored session with everything recorded for it (each as
        ``Store.session_load`` returns it), in no particular order. Called at start,
        before any write; it may raise the implementation's error if the data cannot
        be read (the broker then does not start)."""
        ...


# Copies by constructor rather than dataclasses.replace: delivery_add is on the path of
# every message to a persistent session. A message's fields are immutable values.
def _copy_message(m: StoredMessage, retain: bool | None = None) -> StoredMessage:
    return StoredMessage(m.topic, m.payload, m.qos, m.retain if retain is None else retain,
                         m.properties, m.expires_at)


def _copy_delivery(d: StoredDelivery) -> StoredDelivery:
    return StoredDelivery(d.seq, _copy_message(d.message), d.qos, d.retain,
                          list(d.subscription_ids), d.packet_id, d.state, d.share)


class MemoryStore:
    """Keeps everything the SQLite store keeps, in memory; nothing survives the process.

    Laid out like the SQLite tables (a session's subscriptions, deliveries and PUBREL
    ids are kept apart from its own fields), so both behave alike; ``commit`` calls
    back at once. Also offers ``BulkLoad``.
    """

    healthy = True

    def __init__(self) -> None:
        self._retained: dict[str, StoredMessage] = {}
        self._sessions: dict[str, StoredSession] = {}
        # Insertion order is the order of the latest subscription_set.
        self._subscriptions: dict[str, dict[str, StoredSubscription]] = {}
        self._deliveries: dict[str, dict[int, StoredDelivery]] = {}
        self._awaiting_pubrel: dict[str, set[int]] = {}

    def retained_set(self, message: StoredMessage) -> None:
        self._retained[message.topic] = _copy_message(message, retain=True)

    def retained_delete(self, topic: str) -> None:
        self._retained.pop(topic, None)

    def retained_load(self) -> Iterable[StoredMessage]:
        return [_copy_message(m) for m in self._retained.values()]

    def session_save(self, session: StoredSession) -> None:
        will = session.will
        self._sessions[session.client_id] = StoredSession(
            session.client_id, session.expiry_interval, session.disconnected_at,
            will=_copy_message(will) if will is not None else None,
            will_due_at=session.will_due_at)

    def session_delete(self, client_id: str) -> None:
        self._sessions.pop(client_id, None)
        self._subscriptions.pop(client_id, None)
        self._deliveries.pop(client_id, None)
        self._awaiting_pubrel.pop(client_id, None)

    async def session_load(self, client_id: str) -> StoredSession | None:
        return self._load(client_id)

    def sessions_load(self) -> list[StoredSession]:
        return [s for cid in self._sessions if (s := self._load(cid)) is not None]

    def _load(self, client_id: str) -> StoredSession | None:
        own = self._sessions.get(client_id)
        if own is None:
            return None
        subscriptions = self._subscriptions.get(client_id, {})
        deliveries = self._deliveries.get(client_id, {})
        return StoredSession(
            client_id, own.expiry_interval, own.disconnected_at,
            subscriptions=[replace(s) for s in subscriptions.values()],
            deliveries=[_copy_delivery(deliveries[seq]) for seq in sorted(deliveries)],
            awaiting_pubrel=sorted(self._awaiting_pubrel.get(client_id, ())),
            will=_copy_message(own.will) if own.will is not None else None,
            will_due_at=own.will_due_at)

    def subscription_set(self, client_id: str, sub: StoredSubscription) -> None:
        subscriptions = self._subscriptions.setdefault(client_id, {})
        subscriptions.pop(sub.topic_filter, None)  # a replaced one moves to the end
        subscriptions[sub.topic_filter] = replace(sub)

    def subscription_delete(self, client_id: str, topic_filter: str) -> None:
        self._subscriptions.get(client_id, {}).pop(topic_filter, None)

    def delivery_add(self, client_id: str, delivery: StoredDelivery) -> None:
        self._deliveries.setdefault(client_id, {})[delivery.seq] = _copy_delivery(delivery)

    def delivery_update(self, client_id: str, seq: int, packet_id: int | None,
                        state: str) -> None:
        delivery = self._deliveries.get(client_id, {}).get(seq)
        if delivery is not None:
            delivery.packet_id = packet_id
            delivery.state = state

    def delivery_delete(self, client_id: str, seq: int) -> None:
        self._deliveries.get(client_id, {}).pop(seq, None)

    def pubrel_awaited(self, client_id: str, packet_id: int) -> None:
        self._awaiting_pubrel.setdefault(client_id, set()).add(packet_id)

    def pubrel_received(self, client_id: str, packet_id: int) -> None:
        self._awaiting_pubrel.get(client_id, set()).discard(packet_id)

    def commit(self, callback: Callable[[bool], None]) -> None:
        callback(True)

    def close(self) -> None:
        self._retained.clear()
        self._sessions.clear()
        self._subscriptions.clear()
        self._deliveries.clear()
        self._awaiting_pubrel.clear()
