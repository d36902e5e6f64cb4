"""One simulated MQTT client: an asyncio protocol, no task or thread of its own.

Connection set-up uses the project's pure codec (CONNECT, CONNACK, SUBSCRIBE, SUBACK);
the steady state does not build packet objects at all: PUBLISH packets come pre-encoded
from ``PublishTemplate`` and incoming packets are split and read in place, because the
generator must cost much less per message than the broker it measures.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import TYPE_CHECKING

from roost.bench.payload import HEADER, MAGIC, PublishTemplate
from roost.bench.plan import PUB, ClientSpec
from roost.bench.websocket import WebSocketError, WebSocketFraming
from roost.mqtt import Connack, Connect, Properties, Suback, Subscribe, SubscriptionRequest
from roost.mqtt.decoder import decode_packet
from roost.mqtt.encoder import encode

if TYPE_CHECKING:
    from roost.bench.tally import Tally

_PID = struct.Struct(">H")
MAX_BATCH = 64
DISCONNECT = b"\xe0\x00"
PINGREQ = b"\xc0\x00"


class ConnectError(Exception):
    """The broker refused the connection or subscription; ``reason`` names how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BenchClient(asyncio.Protocol):
    """A connection of the load generator; publishes on a schedule if it is a publisher.

    The publishing schedule is a start time and a rate: at any moment the client owes
    ``(now - t0) * rate`` messages and sends what it owes, at most ``MAX_BATCH`` per loop
    turn and no more than the inflight window allows. A client more than a second behind
    (the broker is slower than the asked rate) drops the backlog instead of bursting.
    """

    def __init__(self, spec: ClientSpec, tally: Tally, level: int, ws_host: str | None,
                 ws_path: str, template: PublishTemplate | None = None, rate: float = 0.0,
                 window: int = 1) -> None:
        self.spec = spec
        self.tally = tally
        self.level = level
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.ws = WebSocketFraming(ws_host, ws_path) if ws_host is not None else None
        self.connack: asyncio.Future[None] = self.loop.create_future()
        self.suback: asyncio.Future[None] = self.loop.create_future()
        self._connect_packet = b""
        self.connected = False
        self.established = False
        self.lost_reason: str | None = None
        self.closed = False
        self.finishing = False
        self.wrote = False
        self.paused = False
        self.local_ip = ""
        # publisher state
        self.template = template
        self.qos = template.qos if template else 0
        self.rate = rate
        self.window = window
        self.seq = 0
        self.inflight: set[int] = set()
        self.next_pid = 1
        self.publishing = False
        self.t0 = 0.0
        self.timer: asyncio.Handle | None = None
        # subscriber state: the last sequence number seen from each publisher
        self.last_seq: dict[int, int] = {}

    # -- set-up -----------------------------------------------------------------------

    def set_connect(self, packet: Connect) -> None:
        self._connect_packet = encode(packet, self.level)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("sockname")
        self.local_ip = str(name[0]) if isinstance(name, tuple) else ""
        if self.ws is not None:
            transport.write(self.ws.handshake())  # type: ignore[attr-defined]
        else:
            self.write(self._connect_packet)

    def subscribe(self, qos: int) -> None:
        props = Properties()
        self.write(encode(Subscribe(1, [SubscriptionRequest(self.spec.topic, qos)], props),
                          self.level))

    def _fail(self, fut: asyncio.Future[None], exc: BaseException) -> None:
        if not fut.done():
            fut.set_exception(exc)

    def _on_connack(self, first: int, body: bytes) -> None:
        packet = decode_packet(first, body, self.level)
        assert isinstance(packet, Connack)
        if packet.reason_code != 0:
            self._fail(self.connack, ConnectError(f"connack 0x{int(packet.reason_code):02x}"))
            return
        peer_max = packet.properties.receive_maximum
        if peer_max:
            self.window = min(self.window, peer_max)
        self.connected = True
        if not self.connack.done():
            self.connack.set_result(None)

    def _on_suback(self, first: int, body: bytes) -> None:
        packet = decode_packet(first, body, self.level)
        assert isinstance(packet, Suback)
        bad = [c for c in packet.reason_codes if c >= 0x80]
        if bad:
            self._fail(self.suback, ConnectError(f"suback 0x{int(bad[0]):02x}"))
        elif not self.suback.done():
            self.suback.set_result(None)

    # -- output -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            return
        if self.ws is not None:
            data = self.ws.send(data)
        self.transport.write(data)
        self.wrote = True

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._kick()

    def ping(self) -> None:
        self.write(PINGREQ)

    def disconnect(self) -> None:
        """Leave politely: DISCONNECT, then close."""
        self.finishing = True
        self.stop_publishing()
        if self.transport is None or self.closed:
            return
        if self.connected:
            self.write(DISCONNECT)
        if self.ws is not None:
            self.transport.write(self.ws.close())
        self.transport.close()

    # -- publishing -------------------------------------------------------------------

    def start_publishing(self, t0: float) -> None:
        """Publish from loop time ``t0`` on."""
        self.publishing = True
        self.t0 = t0
        self.timer = self.loop.call_at(t0, self._tick)

    def stop_publishing(self) -> None:
        self.publishing = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _kick(self) -> None:
        if self.publishing and self.timer is None:
            self.timer = self.loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.timer = None
        if not self.publishing or self.closed or self.paused:
            return
        room = self.window - len(self.inflight) if self.qos else MAX_BATCH
        if room <= 0:
            return  # an acknowledgement kicks us
        rate = self.rate
        if not rate:
            n = min(room, MAX_BATCH)
            self._send(n)
            self.timer = self.loop.call_soon(self._tick)
            return
        now = self.loop.time()
        due = int((now - self.t0) * rate + 1e-6) + 1 - self.seq
        if due > rate + 1:
            self.t0 = now - self.seq / rate
            due = 1
        n = min(due, room, MAX_BATCH)
        if n > 0:
            self._send(n)
        if n < due and n == MAX_BATCH:
            self.timer = self.loop.call_soon(self._tick)
        elif n == due:
            self.timer = self.loop.call_at(self.t0 + self.seq / rate, self._tick)
        # else: the window is full and an acknowledgement kicks us

    def _send(self, n: int) -> None:
        template = self.template
        assert template is not None
        now = time.monotonic_ns()
        seq = self.seq
        if self.qos:
            parts = []
            inflight = self.inflight
            for k in range(n):
                pid = self.next_pid
                while pid in inflight:
                    pid = pid % 65535 + 1
                self.next_pid = pid % 65535 + 1
                inflight.add(pid)
                parts.append(template.packet(seq + k, pid, now))
        else:
            parts = [template.packet(seq + k, 0, now) for k in range(n)]
        self.seq = seq + n
        self.tally.sent += n
        self.write(b"".join(parts))

    def _release(self, pid: int, ok: bool) -> None:
        if pid in self.inflight:
            self.inflight.discard(pid)
            if ok:
                self.tally.acked += 1
            else:
                self.tally.pub_errors += 1
            self._kick()

    # -- input ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            try:
                got = self.ws.receive(data)
            except WebSocketError as exc:
                self._fail(self.connack, ConnectError(f"websocket: {exc}"))
                self.abort("websocket")
                return
            if got.reply and self.transport is not None:
                self.transport.write(got.reply)
            if got.accepted:
                self.write(self._connect_packet)
            if got.closed:
                self.abort("websocket closed")
                return
            data = got.data
            if not data:
                return
        buf = self.buf
        buf += data
        now = time.monotonic_ns()
        n = len(buf)
        pos = 0
        out: list[bytes] = []
        tally = self.tally
        v5 = self.level == 5
        while n - pos >= 2:
            b = buf[pos + 1]
            if b < 0x80:
                length, start = b, pos + 2
            else:
                length, shift, i = 0, 0, pos + 1
                while True:
                    if i >= n:
                        length = -1
                        break
                    b = buf[i]
                    length |= (b & 0x7F) << shift
                    i += 1
                    if not b & 0x80:
                        break
                    shift += 7
                if length < 0:
                    break
                start = i
            end = start + length
            if end > n:
                break
            first = buf[pos]
            kind = first >> 4
            pos = end
            if kind == 3:
                qos = (first >> 1) & 3
                p = start + 2 + ((buf[start] << 8) | buf[start + 1])
                if qos:
                    pid_bytes = bytes(buf[p:p + 2])
                    out.append((b"\x40\x02" if qos == 1 else b"\x50\x02") + pid_bytes)
                    p += 2
                if v5:
                    plen, shift = 0, 0
                    while True:
                        b = buf[p]
                        p += 1
                        plen |= (b & 0x7F) << shift
                        if not b & 0x80:
                            break
                        shift += 7
                    p += plen
                if end - p >= 20 and buf[p:p + 4] == MAGIC:
                    _, pub, seq, sent = HEADER.unpack_from(buf, p)
                    last = self.last_seq.get(pub)
                    if last is None or seq > last:
                        if last is not None and seq > last + 1:
                            tally.gaps += seq - last - 1
                        self.last_seq[pub] = seq
                        tally.received += 1
                        rf = tally.received_from
                        rf[pub] = rf.get(pub, 0) + 1
                        tally.hist.record(now - sent)
                    else:
                        tally.duplicates += 1
                else:
                    tally.received += 1
                    tally.foreign += 1
            elif kind == 4 or kind == 7:
                ok = length < 3 or buf[start + 2] < 0x80
                self._release((buf[start] << 8) | buf[start + 1], ok)
            elif kind == 5:
                pid = (buf[start] << 8) | buf[start + 1]
                if length >= 3 and buf[start + 2] >= 0x80:
                    self._release(pid, False)
                else:
                    out.append(b"\x62\x02" + bytes(buf[start:start + 2]))
            elif kind == 6:
                out.append(b"\x70\x02" + bytes(buf[start:start + 2]))
            elif kind == 2:
                self._on_connack(first, bytes(buf[start:end]))
            elif kind == 9:
                self._on_suback(first, bytes(buf[start:end]))
            elif kind == 14:
                code = buf[start] if length else 0
                self.abort(f"server disconnect 0x{code:02x}")
                return
        if pos:
            del buf[:pos]
        if out:
            self.write(b"".join(out))

    def abort(self, reason: str) -> None:
        """Drop the connection at once; ``reason`` is what the report will say."""
        if self.lost_reason is None:
            self.lost_reason = reason
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        reason = self.lost_reason or (type(exc).__name__ if exc else "closed by broker")
        if self.established:
            self.tally.note_closed(reason, self.finishing)
        self.stop_publishing()
        lost = ConnectError(f"connection lost ({reason})")
        self._fail(self.connack, lost)
        self._fail(self.suback, lost)
        for fut in (self.connack, self.suback):
            if fut.done() and not fut.cancelled():
                fut.exception()  # mark retrieved: a failed set-up is counted by the worker

    @property
    def is_publisher(self) -> bool:
        return self.spec.role == PUB
