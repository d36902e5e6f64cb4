"""Retained messages shared by every node: a JetStream stream, one message per topic.

The stream ``ROOST_<cluster>_RETAINED`` takes the subjects ``roost.<cluster>.retained.>``
(``retained_prefix``), each topic on the subject ``roost.subjects`` gives it under that
prefix, with ``max_msgs_per_subject=1``: the stream's last message of a subject is the
topic's retained message, an empty one (a delete marker) meaning none. Every node feeds
an in-memory index (a topic trie, as ``RetainedMessages``) from an ordered consumer
(deliver all, then new) and tracks the last stream sequence it applied.

- ``update`` of a client's (or a bridge's) message applies it to the local index at once
  and publishes it to the stream (``publish_async``, pipelined by one task).
  ``flushed(done)`` calls back once every publish issued so far is acknowledged (or
  failed): the node makes the store's ``commit`` wait for it, so a QoS 1/2 PUBACK
  follows the stream's acknowledgement. Messages from other nodes (``Origin.REMOTE``)
  change nothing here: the stream brings them. ``$SYS`` values (``persist`` false) stay
  in this node's memory only.
- While a node's own writes of a topic are unacknowledged, the consumer's entries for
  that topic are held back (the newest is kept), so the index never goes back to an older
  value of a topic this node just wrote; once acknowledged, whichever is later in the
  stream wins.
- ``when_current(done)`` reads the stream's last sequence (stream info, from the
  stream's leader) after the call, then calls ``done(True)`` once the index has applied
  it, ``done(False)`` after ``CURRENT_TIMEOUT``. It never blocks the loop. Calls made
  while a read is under way share the next read: one JetStream API request per round,
  however many SUBSCRIBEs arrive at once.

Expiry travels as a wall-clock deadline (``Roost-Expires-At``, seconds since the epoch):
a message read from the stream later expires when it would have.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from roost.cluster.codec import EXPIRY, headers_for, message_from
from roost.cluster.subjects import SubjectTooLong, subject_to_topic, topic_to_subject
from roost.engine.clock import Clock
from roost.engine.message import Message, Origin
from roost.engine.retained import split_expired
from roost.engine.topic_trie import TopicTrie

log = logging.getLogger("roost.cluster")

EXPIRES_AT = "Roost-Expires-At"
# How long a SUBSCRIBE waits for the index to catch up with the stream.
CURRENT_TIMEOUT = 1.0
# How long a start waits for the index to catch up before the node takes clients.
START_TIMEOUT = 10.0
API_TIMEOUT = 2.0
START_RETRY = 20.0
# How long a publish to the stream may wait for its acknowledgement.
ACK_TIMEOUT = 5.0
# Subject (outside the topic trees) of the probe that start publishes until the stream
# answers: its interest reaches the node's server asynchronously.
READY_TOKEN = "ready"


def stream_name(cluster: str) -> str:
    return f"ROOST_{cluster}_RETAINED"


def retained_prefix(cluster: str) -> str:
    """The subject prefix of a Roost cluster's retained stream."""
    if not cluster:
        raise ValueError("a cluster name must not be empty")
    return f"roost.{cluster}.retained"


@dataclass(slots=True)
class _Local:
    """A topic this node wrote, while the stream may still hold an older value."""

    pending: int = 0  # publishes not acknowledged yet
    floor: int = 0  # stream sequence of this node's last acknowledged write
    later: tuple[int, Message | None] | None = None  # newest entry seen while pending
    last: int = 0  # number of this node's newest publish of the topic
    lost: bool = False  # the stream refused that publish


class ClusterRetained:
    """``Retained`` backed by the cluster's retained stream (module docstring)."""

    def __init__(self, nc: Client, cluster: str, clock: Clock, replicas: int = 3) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.clock = clock
        self.replicas = replicas
        self.stream = stream_name(cluster)
        self.prefix = retained_prefix(cluster)
        self.count = 0
        # Whether the stream is in use; until start succeeds the index is this node's.
        self.active = False
        self.applied = 0  # last stream sequence applied to the index
        self.failed = 0  # publishes the stream did not acknowledge
        self._trie: TopicTrie[Message] = TopicTrie()
        self._local: dict[str, _Local] = {}
        self._outgoing: deque[tuple[str, str, bytes, dict[str, str]]] = deque()
        self._outgoing_ready = asyncio.Event()
        self._issued = 0  # publishes handed to update so far
        self._done = 0  # every publish up to this one is acknowledged or failed
        self._done_above: set[int] = set()
        self._failures: list[int] = []
        self._flush_waiters: deque[tuple[int, int, Callable[[bool], None]]] = deque()
        self._seq_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._consumer: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._publisher: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        # Topics whose value is being read back from the stream, with whether the
        # consumer brought a newer entry meanwhile.
        self._restoring: dict[str, bool] = {}
        # when_current calls waiting for the next stream info read, with deadlines.
        self._readers: list[tuple[float, Callable[[bool], None]]] = []
        self._reading = False

    # -- Lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Create the stream (or check it), wait until it takes messages, start the
        consumer and wait (bounded) until the index has caught up. Raises if JetStream
        does not answer; the caller keeps this node's retained messages local then."""
        await self._ensure_stream()
        await self._wait_for_stream()
        self._consumer = await self.js.subscribe(
            f"{self.prefix}.>", stream=self.stream, cb=self._received,
            ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL)
        self.active = True
        self._publisher = asyncio.get_running_loop().create_task(self._publish_loop())
        last = 0
        try:
            info = await asyncio.wait_for(self.js.stream_info(self.stream), API_TIMEOUT)
            last = info.state.last_seq
            await asyncio.wait_for(self._applied_future(last), START_TIMEOUT)
        except (TimeoutError, nats.errors.Error) as exc:
            # In use all the same: SUBSCRIBEs wait for the index themselves.
            log.warning("cluster: retained index at sequence %d of %d at start (%r); "
                        "going on", self.applied, last, exc)
        log.info("cluster: retained stream %s: %d topics, sequence %d", self.stream,
                 self.count, self.applied)

    async def stop(self) -> None:
        """Publish what is waiting, stop the consumer and the tasks."""
        if self._publisher is not None:
            if self._outgoing and self.nc.is_connected:
                await self._publish_outgoing()
            self._publisher.cancel()
            self._publisher = None
        if self._consumer is not None:
            try:
                await self._consumer.unsubscribe()
            except nats.errors.Error as exc:
                log.warning("cluster: stopping the retained consumer: %s", exc)
            self._consumer = None
        for task in list(self._tasks):
            task.cancel()
        self.active = False

    async def _ensure_stream(self) -> None:
        """Create or check the stream. A JetStream API request can go unanswered for a
        while just after the NATS cluster formed, or while another node creates the
        same stream: retried on timeouts for up to ``START_RETRY`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_RETRY
        while True:
            try:
                await self._create_or_check()
                return
            except TimeoutError:
                if loop.time() > deadline:
                    raise
                log.info("cluster: JetStream did not answer about the retained stream "
                         "in time; asking again")

    async def _create_or_check(self) -> None:
        subjects = [f"{self.prefix}.>"]
        try:
            info = await asyncio.wait_for(self.js.stream_info(self.stream), API_TIMEOUT)
        except nats.js.errors.NotFoundError:
            config = api.StreamConfig(
                name=self.stream, subjects=subjects, max_msgs_per_subject=1,
                num_replicas=self.replicas, storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD,
                allow_direct=True)
            try:
                await asyncio.wait_for(self.js.add_stream(config), API_TIMEOUT)
                log.info("cluster: retained stream %s created (R%d)", self.stream,
                         self.replicas)
                return
            except nats.js.errors.BadRequestError:
                # Another node was first.
                info = await asyncio.wait_for(self.js.stream_info(self.stream),
                                              API_TIMEOUT)
        found = info.config
        wrong = []
        if list(found.subjects or ()) != subjects:
            wrong.append(f"subjects {found.subjects} (expected {subjects})")
        if found.max_msgs_per_subject != 1:
            wrong.append(f"max_msgs_per_subject {found.max_msgs_per_subject} (expected 1)")
        if found.num_replicas != self.replicas:
            wrong.append(f"{found.num_replicas} replicas (expected {self.replicas})")
        if found.storage != api.StorageType.FILE:
            wrong.append(f"storage {found.storage} (expected file)")
        if wrong:
            log.warning("cluster: retained stream %s exists with %s", self.stream,
                        ", ".join(wrong))
            if list(found.subjects or ()) != subjects or found.max_msgs_per_subject != 1:
                raise RuntimeError(f"retained stream {self.stream} is not Roost's: "
                                   + ", ".join(wrong))

    async def _wait_for_stream(self) -> None:
        """Publish the probe until the stream acknowledges it ("no responders" for a
        few milliseconds after creation, until its interest reaches our server)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + API_TIMEOUT
        while True:
            try:
                await self.js.publish(f"{self.prefix}.{READY_TOKEN}", b"",
                                      stream=self.stream, timeout=API_TIMEOUT)
                return
            except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)

    # -- Retained -------------------------------------------------------------------

    def update(self, message: Message, persist: bool = True) -> None:
        if message.origin_kind is Origin.REMOTE:
            return  # the stream brings it
        topic = message.topic
        self._set(topic, message if message.payload else None)
        if not persist or message.origin_kind is Origin.SYS or not self.active:
            return
        try:
            subject = topic_to_subject(self.prefix, topic)
        except SubjectTooLong:
            self._once("long", "cluster: a retained topic too long for NATS stays on this "
                       "node")
            return
        now = self.clock.monotonic()
        headers = headers_for(message, now)
        if message.expires_at is not None:
            del headers[EXPIRY]
            headers[EXPIRES_AT] = f"{self.clock.wall() + message.expires_at - now:.3f}"
        entry = self._local.get(topic)
        if entry is None:
            entry = self._local[topic] = _Local()
        entry.pending += 1
        self._issued += 1
        entry.last = self._issued
        entry.lost = False
        self._outgoing.append((topic, subject, message.payload, headers))
        self._outgoing_ready.set()

    def matching(self, topic_filter: str, now: float) -> Iterator[Message]:
        live, expired = split_expired(self._trie.match_names(topic_filter), now)
        for message in expired:
            if self._trie.discard(message.topic) is not None:
                self.count -= 1
        return iter(live)

    def when_current(self, done: Callable[[bool], None]) -> None:
        if not self.active:
            done(False)
            return
        self._readers.append((asyncio.get_running_loop().time() + CURRENT_TIMEOUT, done))
        if not self._reading:
            self._reading = True
            self._spawn(self._read_rounds())

    def flushed(self, done: Callable[[bool], None]) -> None:
        """Call ``done(True)`` once every publish to the stream issued so far is
        acknowledged, ``done(False)`` if one of them failed; at once if none waits."""
        if self._done >= self._issued:
            done(True)
            return
        self._flush_waiters.append((self._issued, self._done, done))

    # -- Inside ---------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restore(self, topic: str) -> None:
        """Put the stream's value of ``topic`` back in the index, after the stream
        refused this node's last write of it (unless something newer came meanwhile)."""
        self._restoring[topic] = False
        try:
            subject = topic_to_subject(self.prefix, topic)
            raw = await asyncio.wait_for(self.js.get_last_msg(self.stream, subject),
                                         API_TIMEOUT)
        except nats.js.errors.NotFoundError:
            raw = None
        except Exception as exc:
            self._restoring.pop(topic, None)
            log.warning("cluster: cannot read retained %r back from the stream: %r",
                        topic, exc)
            return
        superseded = self._restoring.pop(topic, True)
        if superseded or topic in self._local:
            return  # the consumer, or a new write, has a newer value
        if raw is None:
            self._set(topic, None)
        elif (raw.seq or 0) <= self.applied:
            decoded = self._decode(raw.subject or subject, raw.data or b"", raw.headers,
                                   raw.seq or 0)
            if decoded is not None:
                self._set(topic, decoded[1])
        # else the consumer has not reached it yet and will apply it.

    def _set(self, topic: str, message: Message | None) -> None:
        if message is not None:
            if self._trie.get(topic) is None:
                self.count += 1
            self._trie.set(topic, message)
        elif self._trie.discard(topic) is not None:
            self.count -= 1

    async def _read_rounds(self) -> None:
        """Answer the SUBSCRIBEs waiting in ``_readers``, one stream info request per
        round for all of them: a round reads the last sequence after every call it
        answers was made, and calls made meanwhile wait for the next round."""
        loop = asyncio.get_running_loop()
        try:
            while self._readers:
                batch, self._readers = self._readers, []
                first = min(deadline for deadline, _ in batch)
                try:
                    info = await asyncio.wait_for(self.js.stream_info(self.stream),
                                                  max(first - loop.time(), 0.0))
                except Exception as exc:
                    self._once("current", "cluster: the retained index could not be "
                               "brought up to date in time for a SUBSCRIBE (%r): it gets "
                               "what this node has", exc)
                    for _, done in batch:
                        self._call(done, False)
                    continue
                target = info.state.last_seq
                for deadline, done in batch:
                    self._when_applied(target, deadline, done)
        finally:
            self._reading = False

    def _when_applied(self, target: int, deadline: float,
                      done: Callable[[bool], None]) -> None:
        if self.applied >= target:
            self._when_released(target, deadline, done)
            return
        future = self._applied_future(target)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(max(deadline - loop.time(), 0.0), future.cancel)

        def answer(f: asyncio.Future[None]) -> None:
            timer.cancel()
            if f.cancelled():
                self._once("behind", "cluster: the retained index was still behind the "
                           "stream %.1f s after a SUBSCRIBE: it gets what this node has",
                           CURRENT_TIMEOUT)
                self._call(done, False)
            else:
                self._when_released(target, deadline, done)

        future.add_done_callback(answer)

    def _when_released(self, target: int, deadline: float,
                       done: Callable[[bool], None]) -> None:
        """``done(True)`` once no stream entry up to ``target`` is held back behind
        this node's own unacknowledged write of its topic (which may come before it in
        the stream); ``done(False)`` at ``deadline`` if one still is."""
        if not any(entry.pending and entry.later is not None and entry.later[0] <= target
                   for entry in self._local.values()):
            self._call(done, True)
            return
        loop = asyncio.get_running_loop()
        answered = False

        def answer(current: bool) -> None:
            nonlocal answered
            if not answered:
                answered = True
                timer.cancel()
                self._call(done, current)

        timer = loop.call_later(max(deadline - loop.time(), 0.0), answer, False)
        self.flushed(lambda _: answer(True))

    @staticmethod
    def _call(done: Callable[[bool], None], current: bool) -> None:
        try:
            done(current)
        except Exception:
            log.exception("cluster: a retained when_current callback failed")

    def _applied_future(self, seq: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.applied >= seq:
            future.set_result(None)
        else:
            self._seq_waiters.append((seq, future))
        return future

    async def _received(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            self._apply(msg, seq)
        except Exception:
            log.exception("cluster: applying retained message %d failed", seq)
        self.applied = max(self.applied, seq)
        if self._seq_waiters:
            waiting = []
            for target, future in self._seq_waiters:
                if target <= self.applied:
                    if not future.done():
                        future.set_result(None)
                elif not future.done():
                    waiting.append((target, future))
            self._seq_waiters = waiting

    def _decode(self, subject: str, data: bytes, headers: dict[str, str] | None,
                seq: int) -> tuple[str, Message | None] | None:
        """The topic and retained message (None: a delete marker) of a stream entry;
        None if it is not one of Roost's."""
        try:
            topic = subject_to_topic(self.prefix, subject)
        except ValueError:
            return None  # the start probe, or not Roost's
        if not data:
            return topic, None
        clock = self.clock
        now = clock.monotonic()
        try:
            message = message_from(topic, data, headers, now)
            deadline = (headers or {}).get(EXPIRES_AT)
            if deadline is not None:
                message.expires_at = now + float(deadline) - clock.wall()
        except ValueError as exc:
            self._once("malformed", "cluster: dropped retained message %d on %s: %s",
                       seq, subject, exc)
            return None
        return topic, message

    def _apply(self, msg: Msg, seq: int) -> None:
        decoded = self._decode(msg.subject, msg.data, msg.headers, seq)
        if decoded is None:
            return
        topic, message = decoded
        entry = self._local.get(topic)
        if entry is None and topic in self._restoring:
            self._restoring[topic] = True
        if entry is not None:
            if entry.pending:
                if entry.later is None or seq > entry.later[0]:
                    entry.later = (seq, message)
                return
            if seq < entry.floor:
                return
            del self._local[topic]
        self._set(topic, message)

    async def _publish_loop(self) -> None:
        ready = self._outgoing_ready
        while True:
            await ready.wait()
            ready.clear()
            await self._publish_outgoing()

    async def _publish_outgoing(self) -> None:
        outgoing = self._outgoing
        while outgoing:
            topic, subject, payload, headers = outgoing.popleft()
            number = self._issued - len(outgoing)
            try:
                future = await self.js.publish_async(subject, payload, headers=headers,
                                                     stream=self.stream)
            except Exception as exc:
                self._acked(topic, number, None, exc)
                continue
            # An acknowledgement that never comes (NATS lost) must not hold every later
            # commit of the node: it counts as a failure after ACK_TIMEOUT.
            timer = asyncio.get_running_loop().call_later(ACK_TIMEOUT, future.cancel)
            future.add_done_callback(partial(self._answered, topic, number, timer))

    def _answered(self, topic: str, number: int, timer: asyncio.TimerHandle,
                  future: asyncio.Future[api.PubAck]) -> None:
        timer.cancel()
        if future.cancelled():
            self._acked(topic, number, None, asyncio.CancelledError())
        elif (error := future.exception()) is not None:
            self._acked(topic, number, None, error)
        else:
            self._acked(topic, number, future.result().seq, None)

    def _acked(self, topic: str, number: int, seq: int | None,
               error: BaseException | None) -> None:
        if seq is None:
            self.failed += 1
            self._failures.append(number)
            self._once("publish", "cluster: the retained stream did not take a message "
                       "(%r): other nodes may not see it", error)
        entry = self._local.get(topic)
        if entry is not None:
            entry.pending -= 1
            if seq is not None:
                entry.floor = max(entry.floor, seq)
            elif number == entry.last:
                entry.lost = True
            if entry.pending == 0:
                later, entry.later = entry.later, None
                newer = later is not None and later[0] > entry.floor
                if later is not None and newer:
                    self._set(topic, later[1])
                if self.applied >= entry.floor:
                    del self._local[topic]
                    if entry.lost and not newer:
                        # The index shows a value the stream does not have, and the
                        # consumer brings nothing newer: read the stream's back.
                        self._spawn(self._restore(topic))
                # else the consumer brings this node's last accepted write (floor).
        # Publishes complete in any order: advance over the contiguous ones.
        self._done_above.add(number)
        while self._done + 1 in self._done_above:
            self._done += 1
            self._done_above.discard(self._done)
        waiters = self._flush_waiters
        while waiters and waiters[0][0] <= self._done:
            target, start, done = waiters.popleft()
            ok = not any(start < f <= target for f in self._failures)
            try:
                done(ok)
            except Exception:
                log.exception("cluster: a retained flush callback failed")
        if self._failures and not waiters:
            self._failures.clear()

    def _once(self, key: str, text: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)
