"""One asyncio protocol per connection, with output flushed once per loop turn.

Every connection arrives over TCP; a listener may stack sans-IO layers on it, in this
order from the socket up: a PROXY protocol header (read once, before anything else),
TLS, and WebSocket framing. Bytes that come out of the top go to the engine's channel,
and the channel's output goes down through the same layers. No task runs per connection.

Every packet a channel writes during one turn of the event loop is collected and sent
with a single write (see ``flush.py``).
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import struct
import termios

from roost.config import format_host_port
from roost.engine.channel import Channel
from roost.transport import proxy
from roost.transport.listener import ListenerState
from roost.transport.tls import TlsLayer, certificate_identity
from roost.transport.ws import WsLayer

log = logging.getLogger("roost.transport")

# Time a trusted proxy has to send the whole PROXY header (or connect_timeout if less).
PROXY_HEADER_TIMEOUT = 5.0
# After sending a WebSocket close frame, time the client has to answer with its own
# before the socket is closed anyway.
WS_CLOSE_WAIT = 2.0


# Output buffered on one socket above which its publishers are held back, and below
# which they are let go again; and the longest a hold lasts.
HIGH_WATER = 512 * 1024
LOW_WATER = 128 * 1024
HOLD_LIMIT = 1.0
_OUTQ = struct.Struct("i")


class MqttConnection(asyncio.Protocol):
    """A client connection; implements the engine's ``Link``."""

    # One per connection: slots keep an idle connection small.
    __slots__ = ("_listener", "_flusher", "_transport", "_out", "_pending", "_closing",
                 "_admitted", "_peer", "_host", "_identity", "_proxy_buffer", "_proxy_timer",
                 "_tls", "_ws", "_ws_closing", "channel", "_congested", "_slow",
                 "_hold_timer", "_hold_mark", "_holding", "_held_by", "_self_paused")

    def __init__(self, listener: ListenerState) -> None:
        self._listener = listener
        self._flusher = listener.flusher
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._pending = 0
        self._closing = False
        self._admitted = False
        self._peer = "?"
        self._host = ""
        self._identity: str | None = None
        # While a PROXY header is awaited: the bytes received so far.
        self._proxy_buffer: bytes | None = None
        self._proxy_timer: asyncio.TimerHandle | None = None
        self._tls: TlsLayer | None = None
        self._ws: WsLayer | None = None
        # Set while waiting for the client's WebSocket close frame.
        self._ws_closing: asyncio.TimerHandle | None = None
        self.channel: Channel | None = None
        # Back-pressure: set while our socket's buffer is above its high-water mark.
        self._congested = False
        # Once a hold has lasted HOLD_LIMIT, stop holding until we drain (stuck reader).
        self._slow = False
        self._hold_timer: asyncio.TimerHandle | None = None
        # Bytes waiting on our socket when the current hold window began.
        self._hold_mark = 0
        # Publishers whose reading we paused, and how many connections pause ours.
        self._holding: set[MqttConnection] | None = None  # made on the first hold
        self._held_by = 0
        # Reading paused because this client does not read what it makes us send.
        self._self_paused = False

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.set_write_buffer_limits(  # type: ignore[attr-defined]
            high=HIGH_WATER, low=LOW_WATER)
        listener = self._listener
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self._host = peer[0]
            self._peer = format_host_port(peer[0], peer[1])
        if not listener.admit():
            self._abort()
            return
        self._admitted = True
        config = listener.config
        if config.proxy_protocol:
            if not listener.trusts(self._host):
                log.info("closing %s on %s: PROXY protocol listener, address not in "
                         "proxy_trusted", self._peer, listener.name)
                self._abort()
                return
            self._proxy_buffer = b""
            timeout = min(PROXY_HEADER_TIMEOUT, listener.engine.settings.connect_timeout)
            self._proxy_timer = asyncio.get_running_loop().call_later(
                timeout, self._proxy_timed_out, timeout)
        if listener.tls is not None:
            self._tls = TlsLayer(listener.tls.context)
        if config.type in ("ws", "wss"):
            self._ws = WsLayer(config.path)
        self.channel = Channel(listener.engine, self)

    def data_received(self, data: bytes) -> None:
        if self._closing and self._ws_closing is None:
            return
        if self._proxy_buffer is not None:
            rest = self._read_proxy_header(data)
            if rest is None:
                return
            data = rest
        closed = False
        if self._tls is not None:
            tls = self._tls
            was_established = tls.established
            result = tls.receive(data)
            self._write_raw(tls.pending_output())
            if result.error is not None:
                what = "handshake" if not was_established else "error"
                self._fail(f"TLS {what}: {result.error}")
                return
            if result.handshake_done:
                self._on_tls_established()
            data, closed = result.plaintext, result.closed
        if self._ws is not None and data:
            ws_result = self._ws.receive(data)
            self._send_below_ws(self._ws.pending_output())
            if ws_result.error is not None:
                self._fail(ws_result.error)
                return
            data, closed = ws_result.payload, closed or ws_result.closed
        if self._ws_closing is not None:
            if closed:  # the client's answer to our close frame
                self._finish_close()
            return
        if data and self.channel is not None:
            self.channel.data_received(data)
            if self.congested and not self._self_paused and self._transport is not None:
                # The client is not reading our answers (acks, PINGRESPs, its own
                # subscriptions): stop reading it until it does, so it cannot make us
                # buffer without bound. It only delays itself.
                self._self_paused = True
                self.flush()
                if self._held_by == 0:
                    self._transport.pause_reading()
        if closed:
            self.close()

    def pause_writing(self) -> None:
        self._congested = True

    def resume_writing(self) -> None:
        self._congested = False
        self._slow = False
        self._release_held()
        if self._self_paused:
            self._self_paused = False
            if self._held_by == 0 and self._transport is not None:
                self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release_held()
        self._transport = None
        self._closing = True
        for timer in (self._proxy_timer, self._ws_closing):
            if timer is not None:
                timer.cancel()
        self._proxy_timer = self._ws_closing = None
        if self._admitted:
            self._admitted = False
            self._listener.release()
        if self.channel is not None:
            self.channel.connection_lost()
            self.channel = None

    # -- Layers -------------------------------------------------------------------

    def _read_proxy_header(self, data: bytes) -> bytes | None:
        """The bytes after the header once it is complete; None until then (or when the
        connection was closed for a bad header)."""
        assert self._proxy_buffer is not None
        buffer = self._proxy_buffer + data
        try:
            header = proxy.parse(buffer)
        except proxy.ProxyProtocolError as exc:
            self._fail(f"PROXY protocol: {exc}")
            return None
        if header is None:
            self._proxy_buffer = buffer
            return None
        self._proxy_buffer = None
        if self._proxy_timer is not None:
            self._proxy_timer.cancel()
            self._proxy_timer = None
        if header.source is not None:
            via = self._peer
            self._host = header.source[0]
            self._peer = format_host_port(*header.source)
            log.debug("%s on %s is %s (PROXY v%d)", via, self._listener.name, self._peer,
                      header.version)
        ssl_info = header.ssl
        if (self._listener.config.identity_from_certificate == "cn" and ssl_info is not None
                and ssl_info.verified_certificate and ssl_info.cn):
            self._set_identity(ssl_info.cn, "PROXY v2 SSL TLV")
        return buffer[header.length:]

    def _proxy_timed_out(self, timeout: float) -> None:
        self._proxy_timer = None
        if self._proxy_buffer is not None:
            self._fail(f"PROXY protocol: no complete header within {timeout:g} s")

    def _on_tls_established(self) -> None:
        assert self._tls is not None
        info, der = self._tls.peer_certificate()
        mode = self._listener.config.identity_from_certificate
        identity = certificate_identity(mode, info, der)
        if identity is not None:
            self._set_identity(identity, "TLS client certificate")
        log.debug("%s on %s: %s established", self._peer, self._listener.name,
                  self._tls.version)

    def _set_identity(self, identity: str, source: str) -> None:
        self._identity = identity
        log.info("%s on %s: certificate identity %r (%s)", self._peer, self._listener.name,
                 identity, source)

    def _send_below_ws(self, data: bytes) -> None:
        """Send bytes that sit below the WebSocket layer (through TLS, if any)."""
        if not data:
            return
        if self._tls is not None:
            self._tls.send(data)
            data = self._tls.pending_output()
        self._write_raw(data)

    def _write_raw(self, data: bytes) -> None:
        if data and self._transport is not None:
            self._transport.write(data)

    def _fail(self, why: str) -> None:
        """Close because the peer broke a layer below MQTT (its output, such as a TLS
        alert or an HTTP error, has been written already)."""
        log.info("closing %s on %s: %s", self._peer, self._listener.name, why)
        self._out = []
        self._pending = 0
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    # -- Link ---------------------------------------------------------------------

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def listener(self) -> str:
        return self._listener.name

    @property
    def certificate_identity(self) -> str | None:
        return self._identity

    @property
    def congested(self) -> bool:
        return self._congested or self._pending > HIGH_WATER

    def hold(self, publisher: object) -> None:
        """Pause reading from ``publisher`` until this connection drains, so a fast
        publisher waits for its slow subscriber instead of filling memory. A hold lasts
        while the reader makes progress; one that drains nothing for HOLD_LIMIT is taken
        as stuck and cannot stall publishers longer (its QoS 0 messages are then dropped
        beyond ``max_output_buffer``)."""
        if (self._slow or publisher is self or not isinstance(publisher, MqttConnection)
                or publisher._transport is None):
            return
        if self._holding is None:
            self._holding = set()
        elif publisher in self._holding:
            return
        self._holding.add(publisher)
        publisher._held_by += 1
        if publisher._held_by == 1:
            publisher._transport.pause_reading()
        if self._hold_timer is None:
            self._hold_mark = self._unsent()
            self._hold_timer = asyncio.get_running_loop().call_later(
                HOLD_LIMIT, self._hold_expired)

    def _hold_expired(self) -> None:
        self._hold_timer = None
        waiting = self._unsent()
        if self._holding and waiting < self._hold_mark:
            # Slow but reading: keep its publishers waiting for another window.
            self._hold_mark = waiting
            self._hold_timer = asyncio.get_running_loop().call_later(
                HOLD_LIMIT, self._hold_expired)
            return
        if self._holding:
            self._slow = True
            log.info("%s on %s reads too slowly: no longer holding its publishers back",
                     self._peer, self._listener.name)
            self._release_held()

    def _unsent(self) -> int:
        """Bytes not yet taken by the client: our buffer and the kernel's send queue.
        Progress is judged on both: a socket buffer of megabytes reports itself writable
        again only once a good part of it is read, which can take longer than a hold
        window for a reader that is slow but steady."""
        queued = 0
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is not None:
            try:
                queued = _OUTQ.unpack(fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                  bytes(_OUTQ.size)))[0]
            except (OSError, ValueError):
                queued = 0  # not a socket that can tell (or not Linux): ours only
        return self.buffered() + queued

    def _release_held(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        holding, self._holding = self._holding, None
        for publisher in holding or ():
            publisher._held_by -= 1
            if (publisher._held_by == 0 and not publisher._self_paused
                    and publisher._transport is not None):
                publisher._transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self._transport is None or self._closing:
            return
        if not self._out:
            self._flusher.mark(self)
        self._out.append(data)
        self._pending += len(data)

    def buffered(self) -> int:
        size = self._transport.get_write_buffer_size() if self._transport else 0
        return size + self._pending

    def flush(self) -> None:
        out, self._out = self._out, []
        self._pending = 0
        if not out or self._transport is None:
            return
        # One buffer: many tiny writes per turn would cost one iovec each.
        data = out[0] if len(out) == 1 else b"".join(out)
        if self._ws is None and self._tls is None:
            self._transport.write(data)
        else:
            if self._ws is not None:
                self._ws.send(data)
                data = self._ws.pending_output()
            self._send_below_ws(data)
        if self._holding and not self._congested:
            # The hold came from output gathered this turn, and the socket took it all:
            # nothing waits on the reader, so neither should its publishers (no
            # resume_writing will come, as the transport never paused).
            self._release_held()

    def close(self) -> None:
        if self._closing:
            return
        self.flush()
        self._closing = True
        if self._ws is not None and self._ws.open and self._transport is not None:
            # The closing handshake: our close frame, then the client's, then the socket.
            self._ws.close()
            self._send_below_ws(self._ws.pending_output())
            self._ws_closing = asyncio.get_running_loop().call_later(
                WS_CLOSE_WAIT, self._finish_close)
            return
        self._finish_close()

    def _finish_close(self) -> None:
        if self._ws_closing is not None:
            self._ws_closing.cancel()
            self._ws_closing = None
        if self._tls is not None:
            self._tls.close()
            self._write_raw(self._tls.pending_output())
        if self._transport is not None:
            self._transport.close()


def is_loopback(host: str) -> bool:
    """Whether a listener's bind address is loopback (anonymous clients' default)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start_listener(state: ListenerState, backlog: int = 4096) -> asyncio.Server:
    """Bind and serve ``state``'s listener: one ``MqttConnection`` per accepted socket."""
    loop = asyncio.get_running_loop()

    def factory() -> MqttConnection:
        return MqttConnection(state)

    return await loop.create_server(factory, state.config.bind, state.config.port,
                                    backlog=backlog, reuse_address=True)
