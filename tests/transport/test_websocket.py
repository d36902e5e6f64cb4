"""MQTT over WebSocket (ws and wss): paho-mqtt with transport="websockets", and a raw
wsproto client for frames that split packets or hold several, the HTTP side, and the
closing handshake."""

from __future__ import annotations

import queue
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from roost.mqtt import Connack, Connect, Decoder, Pingreq, Pingresp, Publish, Subscribe, encode
from roost.mqtt.packets import Suback, SubscriptionRequest
from tests.broker import BrokerProcess, RawClient, free_port
from tests.transport.conftest import Pki
from tests.transport.helpers import toml_listener


@dataclass
class WsBroker:
    proc: BrokerProcess
    ws_port: int
    wss_port: int


@pytest.fixture(scope="module")
def ws_broker(pki: Pki) -> Iterator[WsBroker]:
    ws_port, wss_port = free_port(), free_port()
    config = (toml_listener(name="plain")
              + toml_listener(name="ws", type="ws", port=ws_port)
              + toml_listener(name="wss", type="wss", port=wss_port, path="/mqtt/secure",
                              certfile=pki.server.certfile, keyfile=pki.server.keyfile))
    with BrokerProcess(config) as proc:
        yield WsBroker(proc, ws_port, wss_port)


def paho_ws(port: int, client_id: str, path: str = "/mqtt", cafile: str | None = None,
            protocol: int = mqtt.MQTTv311) -> tuple[mqtt.Client, queue.Queue[Any]]:
    got: queue.Queue[Any] = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, transport="websockets",
                    protocol=protocol)
    c.ws_set_options(path=path)
    if cafile is not None:
        c.tls_set(ca_certs=cafile)
    connected: queue.Queue[Any] = queue.Queue()
    c.on_connect = lambda client, userdata, flags, rc, props: connected.put(rc)
    c.on_subscribe = lambda client, userdata, mid, codes, props: got.put(("suback", codes))
    c.on_message = lambda client, userdata, msg: got.put((msg.topic, msg.payload))
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    rc = connected.get(timeout=5)
    assert not rc.is_failure, rc
    return c, got


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5, mqtt.MQTTv31],
                         ids=["mqtt311", "mqtt5", "mqtt31"])
def test_paho_pub_sub(ws_broker: WsBroker, pki: Pki, secure: bool, protocol: int) -> None:
    port = ws_broker.wss_port if secure else ws_broker.ws_port
    path = "/mqtt/secure" if secure else "/mqtt"
    cafile = str(pki.ca.certfile) if secure else None
    topic = f"ws/{secure}/{protocol}"
    sub, got = paho_ws(port, f"ws-sub-{secure}-{protocol}", path, cafile, protocol)
    sub.subscribe(topic, 1)
    assert got.get(timeout=5)[0] == "suback"
    pub, _ = paho_ws(port, f"ws-pub-{secure}-{protocol}", path, cafile, protocol)
    big = bytes(range(256)) * 400  # spans many TCP segments and TLS records
    for payload in (b"one", big):
        pub.publish(topic, payload, qos=1).wait_for_publish(5)
        assert got.get(timeout=5) == (topic, payload)
    # Across transports: a plain TCP client publishes to the WebSocket subscriber.
    tcp = RawClient(ws_broker.proc.port)
    tcp.connect(f"ws-tcp-{secure}-{protocol}")
    tcp.publish(topic, b"from tcp")
    assert got.get(timeout=5) == (topic, b"from tcp")
    tcp.disconnect()
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()


class RawWs:
    """A WebSocket client from wsproto over a plain socket, for byte-level tests."""

    def __init__(self, port: int, path: str = "/mqtt",
                 subprotocols: tuple[str, ...] = ("mqtt",)) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target=path,
                                               subprotocols=list(subprotocols))))
        self.events: list[Any] = []
        self.decoder = Decoder(4)

    def next_event(self) -> Any:
        while not self.events:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.events.extend(self.ws.events())
        return self.events.pop(0)

    def accepted(self) -> AcceptConnection:
        event = self.next_event()
        assert isinstance(event, AcceptConnection), event
        return event

    def send_frame(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(BytesMessage(data=data)))

    def packets(self, count: int) -> list[Any]:
        out: list[Any] = []
        while len(out) < count:
            event = self.next_event()
            assert isinstance(event, BytesMessage), event
            out.extend(self.decoder.feed(bytes(event.data)))
        return out


def test_packets_split_across_frames_and_several_in_one_frame(ws_broker: WsBroker) -> None:
    c = RawWs(ws_broker.ws_port)
    assert c.accepted().subprotocol == "mqtt"
    connect = encode(Connect("ws-raw", 4), 4)
    for i in range(0, len(connect), 3):  # CONNECT in frames of 3 bytes
        c.send_frame(connect[i:i + 3])
    assert isinstance(c.packets(1)[0], Connack)
    # Several packets in one frame, the last one cut off and finished in the next frame.
    sub = encode(Subscribe(1, [SubscriptionRequest("ws/raw", 0)]), 4)
    pub = encode(Publish("ws/raw", b"x" * 3000), 4)
    blob = sub + encode(Pingreq(), 4) * 3 + pub
    c.send_frame(blob[:-1000])
    c.send_frame(blob[-1000:])
    got = c.packets(5)
    assert [type(p) for p in got] == [Suback, Pingresp, Pingresp, Pingresp, Publish]
    assert got[4].payload == b"x" * 3000
    # Pings are answered at the WebSocket level.
    c.sock.sendall(c.ws.send(Ping(b"hi")))
    assert c.next_event() == Pong(payload=b"hi")
    c.sock.close()


def test_mqtt_close_sends_a_websocket_close(ws_broker: WsBroker) -> None:
    c = RawWs(ws_broker.ws_port, subprotocols=("mqttv3.1",))
    assert c.accepted().subprotocol == "mqttv3.1"
    c.send_frame(encode(Connect("ws-close", 4), 4))
    assert isinstance(c.packets(1)[0], Connack)
    c.send_frame(encode(Connect("ws-close", 4), 4))  # a second CONNECT: the broker closes
    event = c.next_event()
    assert isinstance(event, CloseConnection) and event.code == 1000, event
    c.sock.sendall(c.ws.send(event.response()))
    assert c.sock.recv(100) == b""
    c.sock.close()


def test_text_frames_are_refused(ws_broker: WsBroker) -> None:
    c = RawWs(ws_broker.ws_port)
    c.accepted()
    c.sock.sendall(c.ws.send(TextMessage(data="hello")))
    event = c.next_event()
    assert isinstance(event, CloseConnection) and event.code == 1003, event
    c.sock.close()


def http(port: int, request: bytes, secure: bool = False, cafile: str | None = None) -> bytes:
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=5)
    if secure:
        ctx = ssl.create_default_context(cafile=cafile)
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    sock.sendall(request)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    sock.close()
    return data


UPGRADE = (b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def test_wrong_path_is_404(ws_broker: WsBroker, pki: Pki) -> None:
    reply = http(ws_broker.ws_port, b"GET /other HTTP/1.1\r\n" + UPGRADE
                 + b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 404 "), reply
    reply = http(ws_broker.wss_port, b"GET /mqtt HTTP/1.1\r\n" + UPGRADE
                 + b"Sec-WebSocket-Protocol: mqtt\r\n\r\n", True, str(pki.ca.certfile))
    assert reply.startswith(b"HTTP/1.1 404 "), reply
    c = RawWs(ws_broker.ws_port, path="/nope")
    assert isinstance(c.next_event(), RejectConnection)
    c.sock.close()


def test_bad_upgrade_requests(ws_broker: WsBroker) -> None:
    reply = http(ws_broker.ws_port, b"GET /mqtt HTTP/1.1\r\n" + UPGRADE + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ") and b'"mqtt" was not offered' in reply, reply
    reply = http(ws_broker.ws_port, b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    reply = http(ws_broker.ws_port, b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    reply = http(ws_broker.ws_port, b"GET /mqtt?x=1 HTTP/1.1\r\n"
                 + UPGRADE.replace(b"13", b"8") + b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 426 ") and b"sec-websocket-version: 13" in reply, reply


def test_first_frames_right_behind_the_request(ws_broker: WsBroker) -> None:
    """A client may send frames before it has read the 101 response."""
    sock = socket.create_connection(("127.0.0.1", ws_broker.ws_port), timeout=5)
    request = WSConnection(ConnectionType.CLIENT).send(
        Request(host="127.0.0.1", target="/mqtt", subprotocols=["mqtt"]))
    frame = Connection(ConnectionType.CLIENT).send(
        BytesMessage(data=encode(Connect("ws-early", 4), 4)))
    sock.sendall(request + frame)
    data = b""
    while b"\x82\x04\x20\x02\x00\x00" not in data:  # CONNACK in a binary frame
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 101 ")
    sock.close()
