"""TLS for listeners: server contexts from the config, reloadable on SIGHUP, and a
sans-IO TLS layer (``ssl.MemoryBIO``) that a connection's protocol object drives.

TLS runs inside the connection's protocol rather than in the event loop's transport so
that a PROXY protocol header can precede the handshake, the context can be swapped for
new connections without touching existing ones, and no task is needed per connection.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

from roost.config import ConfigError, ListenerConfig

log = logging.getLogger("roost.transport")

_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                 "required": ssl.CERT_REQUIRED}


class ListenerError(ConfigError):
    """A listener cannot start (unreadable certificate or key, ...); the message names
    the config file, the listener's key and the file."""


class TlsFileError(Exception):
    """One of a listener's TLS files cannot be used."""

    def __init__(self, key: str, path: str, reason: str) -> None:
        super().__init__(f"{key}: cannot load {path}: {reason}")


def build_context(listener: ListenerConfig) -> ssl.SSLContext:
    """A server context for ``listener``. Raises ``TlsFileError`` naming the key and file
    where the fault is known, else ``ssl.SSLError``/``OSError``/``ValueError``."""
    files = [("certfile", listener.certfile), ("keyfile", listener.keyfile),
             ("cafile", listener.cafile)]
    for key, path in files:
        # OpenSSL's errors do not say which file is at fault, so look at each first.
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError as exc:
            raise TlsFileError(key, path, exc.strerror or str(exc)) from exc
        if b"-----BEGIN " not in text:
            raise TlsFileError(key, path, "not a PEM file")
    assert listener.certfile is not None and listener.keyfile is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    try:
        ctx.load_cert_chain(listener.certfile, listener.keyfile)
    except ssl.SSLError as exc:
        raise TlsFileError("certfile/keyfile", f"{listener.certfile} and {listener.keyfile}",
                           _reason(exc)) from exc
    if listener.cafile:
        try:
            ctx.load_verify_locations(cafile=listener.cafile)
        except ssl.SSLError as exc:
            raise TlsFileError("cafile", listener.cafile, _reason(exc)) from exc
    ctx.verify_mode = _VERIFY_MODES[listener.require_certificate]
    return ctx


class ContextHolder:
    """The context new connections on one listener get; ``reload`` swaps it."""

    def __init__(self, listener: ListenerConfig, index: int, source: str) -> None:
        self.listener = listener
        self._where = f"{source}: listeners[{index}]"
        try:
            self.context = build_context(listener)
        except (TlsFileError, OSError, ValueError) as exc:
            raise ListenerError(f"{self._where}.{exc}") from exc

    def reload(self) -> bool:
        """Load the certificate, key and CA files again; on failure log why and keep the
        current context. Connections already open are not affected either way."""
        try:
            self.context = build_context(self.listener)
        except (TlsFileError, OSError, ValueError) as exc:
            log.error("listener %s: TLS reload failed, keeping the previous certificate: "
                      "%s.%s", self.listener.name, self._where, exc)
            return False
        log.info("listener %s: TLS certificate, key and CA reloaded", self.listener.name)
        return True


@dataclass(slots=True)
class TlsResult:
    """What one ``TlsLayer.receive`` produced."""

    plaintext: bytes = b""
    handshake_done: bool = False
    # The peer sent close_notify or the handshake failed: close after sending ``output``.
    closed: bool = False
    error: str | None = None


class TlsLayer:
    """Server-side TLS over memory buffers. ``receive`` takes bytes from the network;
    ``pending_output`` returns the bytes to send (handshake records, alerts, data)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=True)
        self.established = False

    def receive(self, data: bytes) -> TlsResult:
        result = TlsResult()
        if data:
            self._in.write(data)
        if not self.established:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return result
            except (ssl.SSLError, OSError) as exc:
                result.closed, result.error = True, _reason(exc)
                return result
            self.established = result.handshake_done = True
        chunks = []
        while True:
            try:
                chunk = self._obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                result.closed = True
                break
            except (ssl.SSLError, OSError) as exc:
                result.closed, result.error = True, _reason(exc)
                break
            if not chunk:
                result.closed = True
                break
            chunks.append(chunk)
        result.plaintext = b"".join(chunks)
        return result

    def send(self, data: bytes) -> None:
        """Encrypt application data (only once the handshake is done)."""
        if self.established and data:
            self._obj.write(data)

    def close(self) -> None:
        """Queue a close_notify alert."""
        if self.established:
            try:
                self._obj.unwrap()
            except (ssl.SSLError, OSError):
                pass  # the peer's close_notify has not come: ours is queued anyway

    def pending_output(self) -> bytes:
        return self._out.read()

    def peer_certificate(self) -> tuple[dict[str, Any] | None, bytes | None]:
        """The verified client certificate (decoded, and DER), or Nones if there is
        none. With CERT_OPTIONAL/REQUIRED OpenSSL only completes the handshake when a
        presented certificate verified, so any certificate seen here is verified."""
        if self._obj.context.verify_mode == ssl.CERT_NONE:
            return None, None
        info = self._obj.getpeercert()
        der = self._obj.getpeercert(binary_form=True)
        return (info or None), der

    @property
    def version(self) -> str | None:
        return self._obj.version()


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc)


def certificate_identity(mode: str, info: dict[str, Any] | None,
                         der: bytes | None) -> str | None:
    """The user name a verified certificate gives: its CN (``mode`` "cn") or its subject
    as an RFC 4514 string ("subject"); None for "none" or without a certificate."""
    if mode == "none" or info is None:
        return None
    if mode == "cn":
        for rdn in info.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None
    if der is None:
        return None
    from cryptography import x509

    return x509.load_der_x509_certificate(der).subject.rfc4514_string()
