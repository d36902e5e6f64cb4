"""Client-side WebSocket framing for MQTT over WebSocket, on top of wsproto (sans-IO).

MQTT sees a byte stream: every binary message's data is appended to it, whatever the
frame boundaries, and every write becomes one binary message (MQTT over WebSocket
allows a packet to span messages and a message to hold several packets).
"""

from __future__ import annotations

from dataclasses import dataclass

from wsproto import WSConnection
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

SUBPROTOCOL = "mqtt"


class WebSocketError(Exception):
    """The server refused the upgrade or broke the WebSocket protocol."""


@dataclass(slots=True)
class Received:
    """What one chunk of bytes from the server amounted to."""

    data: bytes = b""
    reply: bytes = b""
    accepted: bool = False
    closed: bool = False


class WebSocketFraming:
    """One client connection's WebSocket layer; the caller moves the bytes."""

    __slots__ = ("_ws", "_host", "_path", "open")

    def __init__(self, host: str, path: str = "/mqtt") -> None:
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._host = host
        self._path = path
        self.open = False

    def handshake(self) -> bytes:
        """The HTTP upgrade request asking for the ``mqtt`` subprotocol."""
        return self._ws.send(Request(host=self._host, target=self._path,
                                     subprotocols=[SUBPROTOCOL]))

    def receive(self, data: bytes) -> Received:
        """Feed bytes from the server; raises WebSocketError on a refusal or violation."""
        out = Received()
        try:
            self._ws.receive_data(data)
            chunks: list[bytes] = []
            replies: list[bytes] = []
            for event in self._ws.events():
                if isinstance(event, BytesMessage):
                    chunks.append(bytes(event.data))
                elif isinstance(event, AcceptConnection):
                    if event.subprotocol != SUBPROTOCOL:
                        raise WebSocketError(f"server chose subprotocol {event.subprotocol!r}, "
                                             f"not {SUBPROTOCOL!r}")
                    self.open = out.accepted = True
                elif isinstance(event, RejectConnection):
                    raise WebSocketError(f"upgrade refused with HTTP {event.status_code}")
                elif isinstance(event, Ping):
                    replies.append(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if self._ws.state is ConnectionState.REMOTE_CLOSING:
                        replies.append(self._ws.send(event.response()))
                    self.open = False
                    out.closed = True
                elif isinstance(event, TextMessage):
                    raise WebSocketError("text message on an MQTT WebSocket")
        except (LocalProtocolError, RemoteProtocolError) as exc:
            raise WebSocketError(str(exc)) from exc
        out.data = b"".join(chunks)
        out.reply = b"".join(replies)
        return out

    def send(self, data: bytes) -> bytes:
        """``data`` as one masked binary message."""
        return self._ws.send(BytesMessage(data=data))

    def close(self) -> bytes:
        """A close frame, if the connection is still open."""
        if not self.open:
            return b""
        self.open = False
        try:
            return self._ws.send(CloseConnection(code=1000))
        except LocalProtocolError:
            return b""
