"""MQTT over WebSocket, sans-IO: the HTTP upgrade (h11) and the frames (wsproto).

``WsLayer.receive(bytes)`` returns the MQTT bytes carried by binary frames, in order, no
matter how packets and frames line up; anything to send back (the 101 response, pongs,
the close frame, an HTTP error) is collected for ``pending_output``.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

# Sub-protocols a client may offer, in our order of preference ("mqttv3.1" is what
# MQTT 3.1 clients such as paho with MQTTv31 send).
SUBPROTOCOLS = ("mqtt", "mqttv3.1")
MAX_REQUEST = 16384


@dataclass(slots=True)
class WsResult:
    """What one ``WsLayer.receive`` produced."""

    payload: bytes = b""
    # The upgrade was refused, the peer closed, or it broke the protocol: close after
    # sending the pending output. ``error`` says why, for the log.
    closed: bool = False
    error: str | None = None


def _http_error(status: int, reason: str, text: str, extra: bytes = b"") -> bytes:
    body = text.encode() + b"\n"
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n").encode() + extra \
        + b"\r\n" + body


class WsLayer:
    """The server side of one WebSocket connection that carries MQTT at ``path``."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._http: h11.Connection | None = h11.Connection(
            h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
        self._ws: Connection | None = None
        self._out: list[bytes] = []
        self.subprotocol: str | None = None

    @property
    def open(self) -> bool:
        return self._ws is not None and self._ws.state is ConnectionState.OPEN

    def receive(self, data: bytes) -> WsResult:
        if self._ws is None:
            return self._handshake(data)
        return self._frames(data)

    def _handshake(self, data: bytes) -> WsResult:
        assert self._http is not None
        self._http.receive_data(data)
        try:
            event = self._http.next_event()
        except h11.RemoteProtocolError as exc:
            return self._refuse(400, "Bad Request", f"bad HTTP request: {exc}")
        if event is h11.NEED_DATA:
            return WsResult()
        if not isinstance(event, h11.Request):
            return self._refuse(400, "Bad Request", "expected an HTTP request")
        target = event.target.decode("ascii", "replace").split("?", 1)[0]
        if target != self._path:
            return self._refuse(404, "Not Found", f"no WebSocket endpoint at {target}")
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if (event.method != b"GET" or headers.get("upgrade", "").lower() != "websocket"
                or "upgrade" not in tokens or "sec-websocket-key" not in headers):
            return self._refuse(400, "Bad Request", "not a WebSocket upgrade request")
        if headers.get("sec-websocket-version") != "13":
            return self._refuse(426, "Upgrade Required", "WebSocket version 13 only",
                                b"sec-websocket-version: 13\r\n")
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
        chosen = next((p for p in SUBPROTOCOLS if p in offered), None)
        if chosen is None:
            return self._refuse(400, "Bad Request",
                                'the WebSocket sub-protocol "mqtt" was not offered')
        self.subprotocol = chosen
        accept = generate_accept_token(headers["sec-websocket-key"].encode("latin-1"))
        response = h11.InformationalResponse(status_code=101, reason=b"Switching Protocols",
                                             headers=[(b"upgrade", b"websocket"),
                                                      (b"connection", b"Upgrade"),
                                                      (b"sec-websocket-accept", accept),
                                                      (b"sec-websocket-protocol",
                                                       chosen.encode())])
        self._out.append(self._http.send(response) or b"")
        # A client may send its first frames right behind the request.
        trailing = self._http.trailing_data[0]
        self._http = None
        self._ws = Connection(ConnectionType.SERVER, trailing_data=trailing)
        return self._frames(b"")

    def _refuse(self, status: int, reason: str, text: str, extra: bytes = b"") -> WsResult:
        self._out.append(_http_error(status, reason, text, extra))
        return WsResult(closed=True, error=f"HTTP {status}: {text}")

    def _frames(self, data: bytes) -> WsResult:
        assert self._ws is not None
        ws = self._ws
        result = WsResult()
        chunks = []
        try:
            if data:
                ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, BytesMessage):
                    chunks.append(event.data)
                elif isinstance(event, Ping):
                    self._out.append(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        self._out.append(ws.send(event.response()))
                    elif ws.state is ConnectionState.OPEN:
                        # wsproto reports a frame it cannot parse as a close it did not
                        # send: answer with that close code.
                        self._close(event.code, "")
                        result.error = f"WebSocket protocol error: {event.reason}"
                    result.closed = True
                    break
                elif isinstance(event, TextMessage):
                    self._close(CloseReason.UNSUPPORTED_DATA, "MQTT needs binary frames")
                    result.closed, result.error = True, "text frame"
                    break
        except (RemoteProtocolError, LocalProtocolError) as exc:
            self._close(CloseReason.PROTOCOL_ERROR, "")
            result.closed, result.error = True, f"WebSocket protocol error: {exc}"
        result.payload = b"".join(chunks)
        return result

    def send(self, data: bytes) -> None:
        """Send MQTT bytes as one binary frame (once the upgrade is done)."""
        if self.open and data:
            assert self._ws is not None
            self._out.append(self._ws.send(BytesMessage(data=data)))

    def close(self) -> None:
        """Queue a normal close frame (the MQTT connection is over)."""
        self._close(CloseReason.NORMAL_CLOSURE, "")

    def _close(self, code: int, reason: str) -> None:
        if self._ws is not None and self._ws.state in (ConnectionState.OPEN,
                                                       ConnectionState.REMOTE_CLOSING):
            self._out.append(self._ws.send(CloseConnection(code=code, reason=reason)))

    def pending_output(self) -> bytes:
        out, self._out = self._out, []
        return b"".join(out)
