"""Front ends for a plain-TCP broker, so ``roost bench --tls`` and ``--ws`` can be tested
whatever listeners the broker has: a TLS terminator and a WebSocket-to-TCP relay
(wsproto on the server side), each on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

from wsproto import WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request

from tests.broker import free_port


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost: (ca, cert, key) files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("bench test CA"))
          .issuer_name(name("bench test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(san, critical=False).sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _tls_client(port: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))


async def _ws_client(port: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    up_writer: asyncio.StreamWriter | None = None
    pump: asyncio.Task[None] | None = None

    async def downstream(up_reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while data := await up_reader.read(65536):
                writer.write(ws.send(BytesMessage(data=data)))
                await writer.drain()
        writer.close()

    try:
        while data := await reader.read(65536):
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    assert event.target == "/mqtt" and "mqtt" in event.subprotocols
                    writer.write(ws.send(AcceptConnection(subprotocol="mqtt")))
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
                    pump = asyncio.create_task(downstream(up_reader))
                elif isinstance(event, BytesMessage) and up_writer is not None:
                    up_writer.write(bytes(event.data))
                elif isinstance(event, CloseConnection):
                    writer.write(ws.send(event.response()))
    except (OSError, AssertionError):
        pass
    finally:
        if up_writer is not None:
            up_writer.close()
        if pump is not None:
            await asyncio.gather(pump, return_exceptions=True)
        writer.close()


@contextlib.contextmanager
def front(kind: str, broker_port: int, ssl_context: ssl.SSLContext | None = None
          ) -> Iterator[int]:
    """Run a ``tls`` or ``ws`` front end for the broker; yields its port."""
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if kind == "ws":
            await _ws_client(broker_port, reader, writer)
        else:
            await _tls_client(broker_port, reader, writer)

    async def serve() -> asyncio.Server:
        return await asyncio.start_server(handler, "127.0.0.1", port, ssl=ssl_context)

    def main() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve())
        started.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
