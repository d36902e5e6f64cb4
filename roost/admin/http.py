"""The operations HTTP endpoint: /metrics, /healthz, /readyz and the /api/v1 JSON API.

HTTP/1.1 is handled by h11 (sans-IO) inside an ``asyncio.Protocol``: one small server
with no framework. Requests are answered synchronously from engine state, on the event
loop, so the API sees a consistent picture; it reads and changes the node only through
``roost.admin.node.Node``. There is no authentication yet: the endpoint binds to loopback by
default (``[http] bind``); do not expose it beyond a trusted network.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import h11

from roost.admin.metrics import CONTENT_TYPE, build_registry, render
from roost.admin.node import Node
from roost.config import format_host_port
from roost.mqtt import ReasonCode

log = logging.getLogger("roost.admin")

MAX_BODY = 64 * 1024
Response = tuple[int, str, bytes]


def _json(status: int, value: Any) -> Response:
    return status, "application/json", json.dumps(value, indent=1).encode() + b"\n"


def _text(status: int, text: str) -> Response:
    return status, "text/plain; charset=utf-8", text.encode() + b"\n"


class OpsApi:
    """Routes a request to its answer; knows nothing of HTTP framing."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.registry = build_registry(node)

    def handle(self, method: str, target: str) -> Response:
        path = unquote(urlsplit(target).path)
        if path == "/healthz":
            return self._only_get(method) or _text(200, "ok")
        if path == "/readyz":
            if err := self._only_get(method):
                return err
            return _text(200, "ready") if self.node.ready else _text(503, "not ready")
        if path == "/metrics":
            if err := self._only_get(method):
                return err
            return 200, CONTENT_TYPE, render(self.registry)
        if path == "/api/v1/clients":
            return self._only_get(method) or _json(200, self.clients())
        if path == "/api/v1/subscriptions":
            return self._only_get(method) or _json(200, self.subscriptions())
        prefix, suffix = "/api/v1/clients/", "/disconnect"
        if path.startswith(prefix) and path.endswith(suffix) and \
                len(path) > len(prefix) + len(suffix):
            if method != "POST":
                return _json(405, {"error": "use POST"})
            return self.disconnect(path[len(prefix):-len(suffix)])
        return _json(404, {"error": f"no such path: {path}"})

    @staticmethod
    def _only_get(method: str) -> Response | None:
        return None if method in ("GET", "HEAD") else _json(405, {"error": "use GET"})

    def clients(self) -> list[dict[str, Any]]:
        return [{
            "client_id": client.client_id,
            "peer": client.peer,
            "protocol_level": client.protocol_level,
            "listener": client.listener,
            "username": client.username,
            "connected_since": client.connected_since,
            "subscriptions": client.subscriptions,
        } for client in sorted(self.node.clients(), key=lambda c: c.client_id)]

    def subscriptions(self) -> list[dict[str, Any]]:
        subs = sorted(self.node.subscriptions(), key=lambda s: (s.client_id, s.topic_filter))
        return [{"client_id": sub.client_id, "filter": sub.topic_filter, "qos": sub.qos,
                 "online": sub.online} for sub in subs]

    def disconnect(self, client_id: str) -> Response:
        client = self.node.client(client_id)
        if client is None:
            return _json(404, {"error": f"client {client_id!r} is not connected"})
        log.info("disconnecting %s (%s): administrative action", client_id, client.peer)
        # 5.0 clients get DISCONNECT 0x98 first; 3.x connections are closed.
        self.node.disconnect(client_id, ReasonCode.ADMINISTRATIVE_ACTION,
                             "disconnected by administrator")
        return _json(200, {"client_id": client_id, "disconnected": True})


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection (keep-alive supported), parsed by h11."""

    def __init__(self, api: OpsApi) -> None:
        self.api = api
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = None
        self.body = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        self._process()
        return None

    def _process(self) -> None:
        while self.transport is not None:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED and self.conn.our_state is h11.DONE \
                        and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, 0
            elif isinstance(event, h11.Data):
                self.body += len(event.data)
                if self.body > MAX_BODY:
                    self._fail(413, "request body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._answer()
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _answer(self) -> None:
        request = self.request
        assert request is not None
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        try:
            status, ctype, body = self.api.handle(method, target)
        except Exception:
            log.exception("HTTP %s %s failed", method, target)
            status, ctype, body = _text(500, "internal error")
        self._send(status, ctype, b"" if method == "HEAD" else body, len(body))

    def _send(self, status: int, ctype: str, body: bytes, length: int) -> None:
        assert self.transport is not None
        headers = [("Content-Type", ctype), ("Content-Length", str(length)),
                   ("Cache-Control", "no-store")]
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        out = self.conn.send(h11.Response(status_code=status, headers=headers,
                                          reason=reason)) or b""
        if body:
            out += self.conn.send(h11.Data(data=body)) or b""
        out += self.conn.send(h11.EndOfMessage()) or b""
        self.transport.write(out)
        if self.conn.our_state is h11.MUST_CLOSE:
            self._close()

    def _fail(self, status: int, why: str) -> None:
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                _, ctype, body = _text(status, why)
                self._send(status, ctype, body, len(body))
            except h11.LocalProtocolError:
                pass
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def start_http(node: Node, host: str, port: int) -> asyncio.Server:
    """Serve the operations endpoint for ``node`` on ``host``:``port``."""
    api = OpsApi(node)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpConnection(api), host, port,
                                      reuse_address=True)
    for sock in server.sockets:
        bound = sock.getsockname()
        log.info("HTTP operations endpoint on http://%s (/metrics, /healthz, /readyz, "
                 "/api/v1; no authentication)", format_host_port(bound[0], bound[1]))
    return server
