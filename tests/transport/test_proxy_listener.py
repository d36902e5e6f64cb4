"""PROXY protocol listeners over real sockets (headers written by the test), and
max_connections. HAProxy itself is in test_haproxy.py."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from roost.mqtt import Connack, Connect, encode
from roost.transport.proxy import (
    PP2_CLIENT_CERT_CONN,
    PP2_CLIENT_SSL,
    encode_v2,
    ssl_tlv,
)
from tests.broker import BrokerProcess, Closed, RawClient, free_port
from tests.transport.conftest import Pki
from tests.transport.helpers import (
    SocketClient,
    open_socket,
    tls_client,
    toml_listener,
    wait_for_log,
)


@dataclass
class ProxyBroker:
    proc: BrokerProcess
    pp: int         # proxy_protocol, trusts loopback, identity from the SSL TLV's CN
    untrusted: int  # proxy_protocol, trusts only 10.0.0.0/8
    pp_tls: int     # PROXY header, then TLS with a client certificate
    limited: int    # max_connections = 2


@pytest.fixture(scope="module")
def proxy_broker(pki: Pki) -> Iterator[ProxyBroker]:
    ports = [free_port() for _ in range(4)]
    config = ("[mqtt]\nconnect_timeout = 1.5\n"
              + toml_listener(name="plain")
              + toml_listener(name="pp", port=ports[0], proxy_protocol=True,
                              identity_from_certificate="cn")
              + toml_listener(name="untrusted", port=ports[1], proxy_protocol=True,
                              proxy_trusted=["10.0.0.0/8", "::1/128"])
              + toml_listener(name="pp-tls", type="tls", port=ports[2], proxy_protocol=True,
                              certfile=pki.server.certfile, keyfile=pki.server.keyfile,
                              cafile=pki.ca.certfile, require_certificate="required",
                              identity_from_certificate="cn")
              + toml_listener(name="limited", port=ports[3], max_connections=2))
    with BrokerProcess(config) as proc:
        yield ProxyBroker(proc, *ports)


def connect_via(port: int, header: bytes, client_id: str) -> SocketClient:
    c = SocketClient(open_socket(port, before=header))
    assert c.connect(client_id).reason_code == 0
    return c


def test_v2_header_gives_address_and_verified_cn(proxy_broker: ProxyBroker) -> None:
    ssl = ssl_tlv(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, cn="device-7")
    header = encode_v2(("203.0.113.9", 4242), ("198.51.100.1", 1883), (ssl,))
    c = connect_via(proxy_broker.pp, header, "pp-v2")
    wait_for_log(proxy_broker.proc, r"203\.0\.113\.9:4242 on pp: certificate identity "
                 r"'device-7' \(PROXY v2 SSL TLV\)")
    wait_for_log(proxy_broker.proc, r"connected pp-v2 \(203\.0\.113\.9:4242\)")
    c.disconnect()


def test_v2_unverified_certificate_gives_no_identity(proxy_broker: ProxyBroker) -> None:
    ssl = ssl_tlv(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 1, cn="forged")
    header = encode_v2(("2001:db8::5", 999), ("2001:db8::1", 1883), (ssl,))
    c = connect_via(proxy_broker.pp, header, "pp-v2-unverified")
    wait_for_log(proxy_broker.proc, r"connected pp-v2-unverified \(\[2001:db8::5\]:999\)")
    assert "'forged'" not in proxy_broker.proc.log()
    c.disconnect()


def test_v1_header_byte_by_byte_then_connect_in_the_same_segment(
        proxy_broker: ProxyBroker) -> None:
    header = b"PROXY TCP4 192.0.2.44 198.51.100.1 5151 1883\r\n"
    sock = open_socket(proxy_broker.pp)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(header) - 1):
        sock.send(header[i:i + 1])
        time.sleep(0.002)
    sock.sendall(header[-1:] + encode(Connect("pp-v1", 4), 4))
    c = SocketClient(sock)
    c.expect(Connack)
    wait_for_log(proxy_broker.proc, r"connected pp-v1 \(192\.0\.2\.44:5151\)")
    c.close()


def test_untrusted_peer_is_closed_at_once(proxy_broker: ProxyBroker) -> None:
    c = RawClient(proxy_broker.untrusted)
    start = time.monotonic()
    with pytest.raises((Closed, ConnectionResetError, BrokenPipeError)):
        c.connect("pp-untrusted")
    assert time.monotonic() - start < 1
    wait_for_log(proxy_broker.proc, r"closing 127\.0\.0\.1:\d+ on untrusted: PROXY protocol "
                 r"listener, address not in proxy_trusted")
    # Even with a header: an untrusted peer's header is not believed.
    c = SocketClient(open_socket(proxy_broker.untrusted,
                                 before=b"PROXY TCP4 10.1.1.1 10.1.1.2 1 2\r\n"))
    with pytest.raises((Closed, ConnectionResetError, BrokenPipeError)):
        c.connect("pp-untrusted-2")
    assert "connected pp-untrusted" not in proxy_broker.proc.log()


@pytest.mark.parametrize(("data", "why"), [
    (encode(Connect("pp-none", 4), 4), "no PROXY protocol header"),
    (b"PROXY TCP4 " + b"1" * 120, "v1 header longer than 107 bytes"),
    (encode_v2(("192.0.2.1", 1), ("192.0.2.2", 2), ((0x04, bytes(600)),)),
     "v2 header of 631 bytes is longer than 536"),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r", "no complete header within 1.5 s"),
])
def test_bad_or_missing_header_closes(proxy_broker: ProxyBroker, data: bytes, why: str) -> None:
    mark = len(proxy_broker.proc.log())
    c = SocketClient(open_socket(proxy_broker.pp, before=data))
    assert c.expect_closed(timeout=4) == []
    wait_for_log(proxy_broker.proc, rf"closing 127\.0\.0\.1:\d+ on pp: PROXY protocol: {why}",
                 after=mark)


def test_header_before_tls_with_client_certificate(proxy_broker: ProxyBroker,
                                                   pki: Pki) -> None:
    header = encode_v2(("198.51.100.77", 6000), ("198.51.100.1", 8883))
    c = tls_client(proxy_broker.pp_tls, pki.ca.certfile, pki.device2.certfile,
                   pki.device2.keyfile, before=header)
    assert c.connect("pp-tls").reason_code == 0
    wait_for_log(proxy_broker.proc, r"198\.51\.100\.77:6000 on pp-tls: certificate identity "
                 r"'device-2' \(TLS client certificate\)")
    wait_for_log(proxy_broker.proc, r"connected pp-tls \(198\.51\.100\.77:6000\)")
    c.disconnect()


def test_max_connections(proxy_broker: ProxyBroker) -> None:
    mark = len(proxy_broker.proc.log())
    first, second = RawClient(proxy_broker.limited), RawClient(proxy_broker.limited)
    first.connect("limit-1")
    second.connect("limit-2")
    for i in range(5):
        extra = RawClient(proxy_broker.limited)
        with pytest.raises((Closed, ConnectionResetError, BrokenPipeError)):
            extra.connect(f"limit-x{i}")
        extra.close()
    log = proxy_broker.proc.log()[mark:]
    assert log.count("max_connections") == 1, log
    assert "listener limited: 2 connections open (max_connections)" in log
    first.disconnect()
    deadline = time.monotonic() + 5
    while True:  # the broker sees the close a moment later
        third = RawClient(proxy_broker.limited)
        try:
            assert third.connect("limit-3").reason_code == 0
            break
        except (Closed, ConnectionResetError, BrokenPipeError):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    second.disconnect()
    third.disconnect()
