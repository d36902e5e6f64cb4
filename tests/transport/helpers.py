"""Shared pieces of the transport tests: a TLS raw client and log waiting."""

from __future__ import annotations

import re
import socket
import ssl
import time
from pathlib import Path

from cryptography import x509

from roost.mqtt import Decoder
from tests.broker import BrokerProcess, RawClient


class SocketClient(RawClient):
    """``RawClient`` over a socket made by the caller (TLS, a chosen source address,
    bytes such as a PROXY header sent before MQTT)."""

    def __init__(self, sock: socket.socket, level: int = 4, timeout: float = 5.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.level = level
        self.decoder = Decoder(level)
        self.pending = []

    def server_serial(self) -> int:
        der = self.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        return x509.load_der_x509_certificate(der).serial_number


def open_socket(port: int, source: str | None = None, before: bytes = b"") -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` from ``source`` (any port), which first
    sends ``before``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                    source_address=(source, 0) if source else None)
    if before:
        sock.sendall(before)
    return sock


def tls_client(port: int, cafile: Path, cert: Path | None = None, key: Path | None = None,
               level: int = 4, source: str | None = None, before: bytes = b"") -> SocketClient:
    """A raw MQTT client over TLS (with a client certificate if given)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    sock = ctx.wrap_socket(open_socket(port, source, before), server_hostname="127.0.0.1")
    return SocketClient(sock, level)


def wait_for_log(broker: BrokerProcess, pattern: str, timeout: float = 5.0,
                 after: int = 0) -> re.Match[str]:
    """The first match of ``pattern`` in the broker's log (from offset ``after``)."""
    deadline = time.monotonic() + timeout
    while True:
        match = re.search(pattern, broker.log()[after:])
        if match:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matching {pattern!r}:\n{broker.log()}")
        time.sleep(0.05)


def toml_listener(**values: object) -> str:
    """A ``[[listeners]]`` table in TOML."""
    lines = ["[[listeners]]"]
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = str(value)
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        else:
            text = f'"{value}"'
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
