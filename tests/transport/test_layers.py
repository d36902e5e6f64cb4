"""The sans-IO layers without sockets: WebSocket fed one byte at a time, TLS between two
memory buffers, identities taken from certificates."""

from __future__ import annotations

import ssl
from dataclasses import replace

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request

from roost.config import ListenerConfig
from roost.transport.tls import ContextHolder, TlsLayer, certificate_identity
from roost.transport.ws import WsLayer
from tests.transport.conftest import Pki


def test_ws_layer_one_byte_at_a_time() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    layer = WsLayer("/mqtt")
    wire = client.send(Request(host="h", target="/mqtt?client=1", subprotocols=["x", "mqtt"]))
    got = b""
    for i in range(len(wire)):
        result = layer.receive(wire[i:i + 1])
        assert not result.closed and result.error is None
        got += result.payload
    client.receive_data(layer.pending_output())
    assert [type(e) for e in client.events()] == [AcceptConnection]
    assert layer.subprotocol == "mqtt"
    frames = client.send(BytesMessage(data=b"abc")) + client.send(BytesMessage(data=b"defg"))
    for i in range(len(frames)):
        got += layer.receive(frames[i:i + 1]).payload
    assert got == b"abcdefg"
    layer.send(b"out")
    layer.close()
    client.receive_data(layer.pending_output())
    events = list(client.events())
    assert events[0] == BytesMessage(data=b"out", frame_finished=True, message_finished=True)
    assert isinstance(events[1], CloseConnection) and events[1].code == 1000


def test_ws_layer_refuses_an_oversized_request() -> None:
    layer = WsLayer("/mqtt")
    result = layer.receive(b"GET /mqtt HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 20000)
    assert result.closed
    assert layer.pending_output().startswith(b"HTTP/1.1 400 ")


def handshake(pki: Pki, listener: ListenerConfig, cert: bool = True) -> TlsLayer:
    server = TlsLayer(ContextHolder(listener, 0, "test.toml").context)
    ctx = ssl.create_default_context(cafile=str(pki.ca.certfile))
    if cert:
        ctx.load_cert_chain(str(pki.device.certfile), str(pki.device.keyfile))
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    for _ in range(10):
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        result = server.receive(c_out.read())
        assert result.error is None
        c_in.write(server.pending_output())
        if server.established:
            break
    assert server.established
    client.write(b"hello")
    assert server.receive(c_out.read()).plaintext == b"hello"
    return server


def test_tls_layer_and_identities(pki: Pki) -> None:
    base = ListenerConfig(type="tls", certfile=str(pki.server.certfile),
                          keyfile=str(pki.server.keyfile), cafile=str(pki.ca.certfile),
                          require_certificate="optional")
    server = handshake(pki, base)
    info, der = server.peer_certificate()
    assert certificate_identity("cn", info, der) == "device-1"
    assert certificate_identity("subject", info, der) == "CN=device-1,O=Roost Tests"
    assert certificate_identity("none", info, der) is None
    # Without a client certificate ("optional"), and without asking for one ("none").
    assert handshake(pki, base, cert=False).peer_certificate() == (None, None)
    unasked = handshake(pki, replace(base, require_certificate="none"))
    assert unasked.peer_certificate() == (None, None)
