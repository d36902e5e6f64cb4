"""HAProxy (Debian's package) in front of Roost: send-proxy-v2, send-proxy (v1), and TLS
terminated by HAProxy with the client certificate's CN passed on (send-proxy-v2-ssl-cn).
Clients connect from 127.0.0.2, so the address Roost logs can only come from the header.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from roost.mqtt import Publish
from tests.broker import BrokerProcess, Closed, RawClient, free_port
from tests.transport.conftest import Pki
from tests.transport.helpers import (
    SocketClient,
    open_socket,
    tls_client,
    toml_listener,
    wait_for_log,
)

CLIENT_ADDRESS = "127.0.0.2"


@pytest.fixture(scope="module")
def haproxy_bin() -> str:
    """Fail (not skip) when HAProxy is missing: `make test` installs it."""
    path = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if path is None:
        pytest.fail("haproxy not found: install the Debian package haproxy "
                    "(`make system-deps` or `make test` does)", pytrace=False)
    return path


@dataclass
class Setup:
    broker: BrokerProcess
    direct: int  # Roost's PROXY protocol listener, reached directly
    v2: int      # HAProxy frontends
    v1: int
    tls: int


HAPROXY_CONFIG = """\
global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v2
    bind 127.0.0.1:{v2}
    default_backend roost_v2
backend roost_v2
    server roost 127.0.0.1:{roost} send-proxy-v2
frontend v1
    bind 127.0.0.1:{v1}
    default_backend roost_v1
backend roost_v1
    server roost 127.0.0.1:{roost} send-proxy
frontend tls
    bind 127.0.0.1:{tls} ssl crt {crt} ca-file {ca} verify required
    default_backend roost_ssl
backend roost_ssl
    server roost 127.0.0.1:{roost} send-proxy-v2-ssl-cn
"""


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            open_socket(port).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"haproxy did not start:\n{log.read_text()}") from None
            time.sleep(0.05)


@pytest.fixture(scope="module")
def setup(haproxy_bin: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Setup]:
    d = tmp_path_factory.mktemp("haproxy")
    roost_port = free_port()
    # Trusts only the address HAProxy connects from; clients use 127.0.0.2.
    config = (toml_listener(name="plain")
              + toml_listener(name="behind-haproxy", port=roost_port, proxy_protocol=True,
                              proxy_trusted=["127.0.0.1/32"], identity_from_certificate="cn"))
    crt = d / "server.pem"
    crt.write_bytes(pki.server.certfile.read_bytes() + pki.server.keyfile.read_bytes())
    ports = {"v2": free_port(), "v1": free_port(), "tls": free_port()}
    cfg = d / "haproxy.cfg"
    cfg.write_text(HAPROXY_CONFIG.format(roost=roost_port, crt=crt, ca=pki.ca.certfile,
                                         **ports))
    log = d / "haproxy.log"
    with BrokerProcess(config) as broker, open(log, "wb") as out:
        proc = subprocess.Popen([haproxy_bin, "-db", "-f", str(cfg)], stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            for port in ports.values():
                wait_listening(port, proc, log)
            yield Setup(broker, roost_port, **ports)
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def client_from(port: int) -> SocketClient:
    return SocketClient(open_socket(port, source=CLIENT_ADDRESS))


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_real_client_address_reaches_roost(setup: Setup, version: str) -> None:
    port = setup.v2 if version == "v2" else setup.v1
    sub = client_from(port)
    assert sub.connect(f"haproxy-{version}-sub").reason_code == 0
    sub.subscribe(f"haproxy/{version}")
    pub = client_from(port)
    pub.connect(f"haproxy-{version}-pub")
    pub.publish(f"haproxy/{version}", b"through haproxy")
    assert sub.expect(Publish).payload == b"through haproxy"
    local_port = sub.sock.getsockname()[1]
    wait_for_log(setup.broker, rf"connected haproxy-{version}-sub \(127\.0\.0\.2:{local_port}\)")
    for c in (sub, pub):
        c.disconnect()


def test_tls_terminated_by_haproxy_passes_the_cn(setup: Setup, pki: Pki) -> None:
    c = tls_client(setup.tls, pki.ca.certfile, pki.device.certfile, pki.device.keyfile,
                   source=CLIENT_ADDRESS)
    assert c.connect("haproxy-tls").reason_code == 0
    wait_for_log(setup.broker, r"127\.0\.0\.2:\d+ on behind-haproxy: certificate identity "
                 r"'device-1' \(PROXY v2 SSL TLV\)")
    wait_for_log(setup.broker, r"connected haproxy-tls \(127\.0\.0\.2:\d+\)")
    c.disconnect()


def test_direct_connection_from_untrusted_address_is_closed(setup: Setup) -> None:
    c = client_from(setup.direct)  # 127.0.0.2 is not in proxy_trusted
    with pytest.raises((Closed, ConnectionResetError, BrokenPipeError)):
        c.connect("haproxy-bypass")
    wait_for_log(setup.broker, r"closing 127\.0\.0\.2:\d+ on behind-haproxy: PROXY protocol "
                 r"listener, address not in proxy_trusted")
    # From a trusted address but without a header: closed too.
    c = RawClient(setup.direct)
    with pytest.raises((Closed, ConnectionResetError, BrokenPipeError)):
        c.connect("haproxy-no-header")
    assert "connected haproxy-bypass" not in setup.broker.log()
    assert "connected haproxy-no-header" not in setup.broker.log()
