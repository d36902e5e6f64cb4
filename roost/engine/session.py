"""A session: the state that outlives a connection (4.1).

It owns the client's subscriptions, the packet identifiers it uses towards the client,
QoS 1/2 messages in flight, messages queued while offline or while the window is full,
and the QoS 2 packet identifiers received and awaiting PUBREL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from roost.engine.clock import Timer
from roost.engine.events import DropReason, MessageDropped
from roost.engine.hooks import HookRegistry
from roost.engine.link import FlowSource
from roost.engine.message import Message
from roost.engine.subscriptions import Subscription
from roost.mqtt.packets import Will
from roost.mqtt.properties import Properties
from roost.mqtt.reason_codes import ReasonCode

if TYPE_CHECKING:
    from roost.engine.stats import Stats

log = logging.getLogger("roost.session")


class Fifo:
    """A first-in first-out queue of deliveries on a plain list.

    Every session has one and most stay empty, so it must cost little when empty: a
    ``collections.deque`` allocates a 64-slot block up front (~700 bytes per session).
    Items are taken from ``head`` and the list is compacted once half of it is spent.
    """

    __slots__ = ("_items", "_head")

    def __init__(self) -> None:
        self._items: list[Delivery] = []
        self._head = 0

    def append(self, item: Delivery) -> None:
        self._items.append(item)

    def popleft(self) -> Delivery:
        items = self._items
        if self._head >= len(items):
            raise IndexError("pop from an empty queue")
        item = items[self._head]
        self._head += 1
        if self._head == len(items):
            items.clear()
            self._head = 0
        elif self._head > 64 and self._head * 2 > len(items):
            del items[:self._head]
            self._head = 0
        return item

    def clear(self) -> None:
        self._items.clear()
        self._head = 0

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __bool__(self) -> bool:
        return len(self._items) > self._head

    def __iter__(self) -> Iterator[Delivery]:
        items = self._items
        return (items[i] for i in range(self._head, len(items)))


@dataclass(slots=True)
class Delivery:
    """A message on its way to one session, at the QoS and flags it will be sent with."""

    message: Message
    qos: int
    retain: bool
    subscription_ids: list[int]
    # Position in the session's stream of deliveries; the store's key for it.
    seq: int = 0
    # The shared subscription ("$share/group/filter") it came through, so that it can go
    # back to that group if this session ends before the client has it (4.8.2); None
    # for a delivery through a plain subscription.
    share: str | None = None


@dataclass(slots=True)
class Inflight:
    delivery: Delivery
    # "publish": PUBLISH sent, waiting for PUBACK/PUBREC; "pubrel": PUBREL sent.
    state: str = "publish"


class Journal(Protocol):
    """Where a persistent session records changes that must survive a restart."""

    def added(self, delivery: Delivery, packet_id: int | None, state: str) -> None: ...
    def updated(self, delivery: Delivery, packet_id: int, state: str) -> None: ...
    def removed(self, delivery: Delivery) -> None: ...
    def pubrel_awaited(self, packet_id: int) -> None: ...
    def pubrel_received(self, packet_id: int) -> None: ...
    def subscribed(self, sub: Subscription) -> None: ...
    def unsubscribed(self, topic_filter: str) -> None: ...


class Outlet(Protocol):
    """The connection a session sends through while the client is online."""

    @property
    def send_window(self) -> int: ...

    def send_delivery(self, delivery: Delivery, packet_id: int | None, dup: bool,
                      flow: FlowSource | None = None) -> bool:
        """Send a PUBLISH; False if it was dropped (expired, too large for the client,
        or QoS 0 to a connection over its output limit). If the connection is then
        congested, it holds ``flow`` back (``Link.hold``)."""
        ...

    def send_pubrel(self, packet_id: int) -> None: ...

    def disconnect(self, reason: ReasonCode, why: str | None = None,
                   properties: Properties | None = None) -> None:
        """Server-initiated close (a takeover, an administrative disconnect)."""
        ...


@dataclass(slots=True, eq=False)
class Session:
    client_id: str
    # Seconds the session outlives its connection; None means it never expires.
    expiry_interval: int | None = 0
    max_queued: int = 1000
    queue_qos0: bool = False
    stats: Stats | None = None
    # Payload and topic bytes the queue may hold; 0 means no byte limit.
    max_queued_bytes: int = 0
    queued_bytes: int = 0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    outlet: Outlet | None = None
    inflight: dict[int, Inflight] = field(default_factory=dict)
    queue: Fifo = field(default_factory=lambda: Fifo())
    # QoS 2 packet ids received and not yet released (a dict: an empty set costs 216
    # bytes, an empty dict 64, and every session has one).
    awaiting_pubrel: dict[int, None] = field(default_factory=dict)
    next_packet_id: int = 1
    next_seq: int = 1
    # Set for sessions that outlive their connection and must be stored.
    journal: Journal | None = None
    dropped: int = 0
    # A will waiting for its delay or for the session to end, and the timers involved.
    pending_will: Will | None = None
    will_timer: Timer | None = None
    expiry_timer: Timer | None = None
    # Who owns the session, for access checks: set at each CONNECT. A session restored
    # from the store is not identified until its client connects again.
    username: str | None = None
    identified: bool = False
    # Whether the owner may read a topic; None when no authorizer is configured, so
    # an open broker pays nothing per message.
    read_check: Callable[[str], bool] | None = None
    # Where to report messages dropped here (engine events), if anyone listens.
    hooks: HookRegistry | None = None

    # -- Subscriber interface -------------------------------------------------------

    @property
    def key(self) -> str:
        return self.client_id

    @property
    def online(self) -> bool:
        return self.outlet is not None

    def deliver(self, message: Message, subscriptions: list[Subscription],
                flow: FlowSource | None = None) -> None:
        """Accept a routed message matched by one or more of this session's filters.

        One copy is sent at the highest QoS granted by any of them (capped at the
        message's own), carrying every matching subscription identifier.
        """
        check = self.read_check
        if check is not None and not check(message.topic):
            return
        subs = subscriptions
        if message.origin == self.client_id:
            subs = [s for s in subscriptions if not s.no_local]
            if not subs:
                return
        qos = 0
        retain = False
        ids: list[int] = []
        for s in subs:
            if s.qos > qos:
                qos = s.qos
            if s.retain_as_published:
                retain = message.retain
            if s.identifier is not None:
                ids.append(s.identifier)
        if message.qos < qos:
            qos = message.qos
        self.enqueue(Delivery(message, qos, retain, ids), flow)

    def deliver_shared(self, message: Message, sub: Subscription,
                       flow: FlowSource | None = None) -> None:
        """Accept a message for the shared subscription ``sub``, this session being the
        member of the group whose turn it is.

        It is a delivery of its own, apart from any through plain subscriptions (4.8.2:
        a client with both gets a copy from each), and remembers ``sub``'s group.
        No Local does not apply: it is refused on shared subscriptions (3.8.3.1).
        """
        check = self.read_check
        if check is not None and not check(message.topic):
            return
        ids = [sub.identifier] if sub.identifier is not None else []
        qos = sub.qos if sub.qos < message.qos else message.qos
        retain = message.retain if sub.retain_as_published else False
        self.enqueue(Delivery(message, qos, retain, ids, 0, sub.topic_filter), flow)

    def deliver_retained(self, message: Message, sub: Subscription) -> None:
        """Send a retained message because of a new subscription (retain flag set)."""
        check = self.read_check
        if check is not None and not check(message.topic):
            return
        ids = [sub.identifier] if sub.identifier is not None else []
        self.enqueue(Delivery(message, min(message.qos, sub.qos), True, ids))

    # -- Queueing and the inflight window --------------------------------------------

    def enqueue(self, delivery: Delivery, flow: FlowSource | None = None) -> None:
        """Send now if the client is online and the window allows, else queue (QoS 0
        only when ``queue_qos0``; a full queue drops it). ``flow``: see ``Outlet``."""
        outlet = self.outlet
        if delivery.qos == 0:
            if outlet is not None:
                outlet.send_delivery(delivery, None, False, flow)
                return
            if not self.queue_qos0:
                return
        elif outlet is not None and not self.queue and len(self.inflight) < outlet.send_window:
            self._number(delivery)
            self._send_new(outlet, delivery, False, flow)
            return
        size = _size(delivery)
        if len(self.queue) >= self.max_queued or (
                self.max_queued_bytes and self.queued_bytes + size > self.max_queued_bytes):
            self._drop(delivery)
            return
        self.queued_bytes += size
        if delivery.qos:
            self._number(delivery)
            if self.journal is not None:
                self.journal.added(delivery, None, "queued")
        self.queue.append(delivery)

    def _number(self, delivery: Delivery) -> None:
        delivery.seq = self.next_seq
        self.next_seq += 1

    def _drop(self, delivery: Delivery) -> None:
        self.dropped += 1
        if self.stats is not None:
            self.stats.dropped_queue_full += 1
        hooks = self.hooks
        if hooks is not None and hooks.message_events:
            hooks.emit(MessageDropped(self.client_id, delivery.message.topic,
                                      DropReason.QUEUE_FULL))
        if self.dropped == 1:
            log.warning("session %r: queue full (%d messages), dropping new messages; "
                        "further drops for this session are counted, not logged",
                        self.client_id, self.max_queued)
        if self.dropped == 1 and self.max_queued_bytes:
            log.warning("session %r: queue limits are %d messages and %d bytes",
                        self.client_id, self.max_queued, self.max_queued_bytes)

    def _allocate_packet_id(self) -> int:
        pid = self.next_packet_id
        for _ in range(65535):
            if pid not in self.inflight:
                break
            pid = pid % 65535 + 1
        else:  # pragma: no cover - the window is far below 65535
            raise RuntimeError("no free packet identifier")
        self.next_packet_id = pid % 65535 + 1
        return pid

    def _send_new(self, outlet: Outlet, delivery: Delivery, stored: bool,
                  flow: FlowSource | None = None) -> None:
        """Put a delivery in flight; ``stored`` says whether the journal already holds it
        (queued), so a persistent session writes one row per delivery, not two."""
        if delivery.qos == 0:
            outlet.send_delivery(delivery, None, False, flow)
            return
        pid = self._allocate_packet_id()
        if outlet.send_delivery(delivery, pid, False, flow):
            self.inflight[pid] = Inflight(delivery)
            if self.journal is not None:
                if stored:
                    self.journal.updated(delivery, pid, "publish")
                else:
                    self.journal.added(delivery, pid, "publish")
        elif stored and self.journal is not None:
            self.journal.removed(delivery)

    def pump(self) -> None:
        """Move queued messages into flight while the window allows."""
        outlet = self.outlet
        if outlet is None:
            return
        queue = self.queue
        window = outlet.send_window
        while queue and len(self.inflight) < window and self.outlet is outlet:
            delivery = queue.popleft()
            self.queued_bytes -= _size(delivery)
            self._send_new(outlet, delivery, stored=delivery.qos > 0)

    def resume(self) -> None:
        """On reconnect: resend what is in flight (DUP set), then the queue, in order."""
        outlet = self.outlet
        if outlet is None:
            return
        for pid, item in list(self.inflight.items()):
            if item.state == "pubrel":
                outlet.send_pubrel(pid)
            elif not outlet.send_delivery(item.delivery, pid, True):
                del self.inflight[pid]
                if self.journal is not None:
                    self.journal.removed(item.delivery)
        self.pump()

    # -- Acknowledgements from the client --------------------------------------------

    def acknowledged(self, packet_id: int, qos: int) -> bool:
        """PUBACK (qos 1) or PUBCOMP (qos 2) arrived; True if it matched."""
        item = self.inflight.get(packet_id)
        if item is None or item.delivery.qos != qos:
            return False
        if qos == 2 and item.state != "pubrel":
            return False
        del self.inflight[packet_id]
        if self.journal is not None:
            self.journal.removed(item.delivery)
        self.pump()
        return True

    def received(self, packet_id: int, failed: bool) -> bool:
        """PUBREC arrived; True if it matched a QoS 2 PUBLISH in flight."""
        item = self.inflight.get(packet_id)
        if item is None or item.delivery.qos != 2:
            return False
        if failed:
            del self.inflight[packet_id]
            if self.journal is not None:
                self.journal.removed(item.delivery)
            self.pump()
        else:
            item.state = "pubrel"
            if self.journal is not None:
                self.journal.updated(item.delivery, packet_id, "pubrel")
        return True

    def await_pubrel(self, packet_id: int) -> None:
        self.awaiting_pubrel[packet_id] = None
        if self.journal is not None:
            self.journal.pubrel_awaited(packet_id)

    def pubrel_done(self, packet_id: int) -> None:
        self.awaiting_pubrel.pop(packet_id, None)
        if self.journal is not None:
            self.journal.pubrel_received(packet_id)

    def subscribed(self, sub: Subscription) -> None:
        self.subscriptions[sub.topic_filter] = sub
        if self.journal is not None:
            self.journal.subscribed(sub)

    def unsubscribed(self, topic_filter: str) -> Subscription | None:
        sub = self.subscriptions.pop(topic_filter, None)
        if sub is not None and self.journal is not None:
            self.journal.unsubscribed(topic_filter)
        return sub

    def drop_unreadable(self) -> int:
        """Drop queued and not yet acknowledged messages the owner may not read (after
        its identity or the ACL changed); return how many."""
        check = self.read_check
        if check is None:
            return 0
        dropped = 0
        for pid, item in list(self.inflight.items()):
            if item.state == "publish" and not check(item.delivery.message.topic):
                del self.inflight[pid]
                if self.journal is not None:
                    self.journal.removed(item.delivery)
                dropped += 1
        kept = Fifo()
        for delivery in self.queue:
            if check(delivery.message.topic):
                kept.append(delivery)
                continue
            self.queued_bytes -= _size(delivery)
            if delivery.qos and self.journal is not None:
                self.journal.removed(delivery)
            dropped += 1
        self.queue = kept
        return dropped

    def unfinished_shared(self) -> list[Delivery]:
        """QoS 1/2 deliveries through shared subscriptions that the client has not got:
        in flight without an acknowledgement (PUBLISH sent, no PUBACK/PUBREC), then
        queued, in the order they were to be sent. Those past PUBREC ("pubrel") are not
        included: the client has them. For a session that is ending (4.8.2)."""
        out = [item.delivery for item in self.inflight.values()
               if item.state == "publish" and item.delivery.share is not None]
        out.extend(d for d in self.queue if d.share is not None and d.qos)
        return out

    def cancel_timers(self) -> None:
        for timer in (self.will_timer, self.expiry_timer):
            if timer is not None:
                timer.cancel()
        self.will_timer = self.expiry_timer = None


def _size(delivery: Delivery) -> int:
    """What a queued delivery counts against the session's byte limit."""
    return len(delivery.message.payload) + len(delivery.message.topic)
