"""PROXY protocol v1 and v2 (HAProxy's spec), sans-IO: bytes in, a header or "need more".

``parse(data)`` looks at the start of a connection's bytes and returns ``None`` while the
header is incomplete, a ``ProxyHeader`` (with ``length``, the bytes it used) once it is
complete, or raises ``ProxyProtocolError`` if the bytes cannot be a valid header. No
state is kept between calls: the caller keeps the bytes and calls again with more, and
the header is so small (at most ``MAX_HEADER`` bytes) that re-reading is cheap.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from enum import IntEnum

V1_PREFIX = b"PROXY "
V1_MAX = 107  # "PROXY UNKNOWN" with two full IPv6 addresses and ports, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# The buffer size the spec recommends receivers accept: room for UNIX addresses and a
# few TLVs. A longer header closes the connection rather than growing a buffer.
MAX_HEADER = 536


class ProxyProtocolError(ValueError):
    """The peer sent something that is not a valid PROXY protocol header."""


class Tlv(IntEnum):
    ALPN = 0x01
    AUTHORITY = 0x02
    CRC32C = 0x03
    NOOP = 0x04
    UNIQUE_ID = 0x05
    SSL = 0x20
    NETNS = 0x30


class SslSubtype(IntEnum):
    VERSION = 0x21
    CN = 0x22
    CIPHER = 0x23
    SIG_ALG = 0x24
    KEY_ALG = 0x25


# Bits of the PP2_TYPE_SSL TLV's ``client`` field.
PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04


@dataclass(frozen=True, slots=True)
class SslInfo:
    """What the proxy says about the client's TLS connection (PP2_TYPE_SSL)."""

    client: int
    verify: int
    version: str | None = None
    cn: str | None = None
    cipher: str | None = None

    @property
    def verified_certificate(self) -> bool:
        """The client connected over TLS and presented a certificate that the proxy
        verified (``verify`` is 0 only when a certificate was presented and passed)."""
        presented = self.client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)
        return bool(self.client & PP2_CLIENT_SSL) and bool(presented) and self.verify == 0


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete header. ``source`` is None when the proxy did not say (v1 UNKNOWN,
    v2 LOCAL, or an address family we do not use): keep the connection's own address."""

    version: int
    length: int
    local: bool = False
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())
    ssl: SslInfo | None = None


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``, or None if more bytes are needed."""
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data)
    if data:
        raise ProxyProtocolError("no PROXY protocol header")
    return None


# -- Version 1: one text line -------------------------------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | None:
    head = data[:len(V1_PREFIX)]
    if head != V1_PREFIX[:len(head)]:
        raise ProxyProtocolError("no PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyProtocolError(f"v1 header longer than {V1_MAX} bytes")
        if b"\n" in data[:V1_MAX]:
            raise ProxyProtocolError("v1 header line does not end with CRLF")
        return None
    length = end + 2
    try:
        line = data[len(V1_PREFIX):end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("v1 header is not ASCII") from None
    parts = line.split(" ")
    if parts[0] == "UNKNOWN":
        return ProxyHeader(version=1, length=length)
    if parts[0] not in ("TCP4", "TCP6") or len(parts) != 5:
        raise ProxyProtocolError(f"bad v1 header {line!r}")
    family = 4 if parts[0] == "TCP4" else 6
    src = _v1_address(parts[1], family)
    dst = _v1_address(parts[2], family)
    return ProxyHeader(version=1, length=length,
                       source=(src, _v1_port(parts[3])), destination=(dst, _v1_port(parts[4])))


def _v1_address(text: str, family: int) -> str:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyProtocolError(f"bad address {text!r} in v1 header") from None
    if addr.version != family:
        raise ProxyProtocolError(f"address {text!r} is not IPv{family}")
    return str(addr)


def _v1_port(text: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
        raise ProxyProtocolError(f"bad port {text!r} in v1 header")
    return int(text)


# -- Version 2: binary --------------------------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | None:
    head = data[:len(V2_SIGNATURE)]
    if head != V2_SIGNATURE[:len(head)]:
        raise ProxyProtocolError("no PROXY protocol header")
    if len(data) < 16:
        return None
    ver_cmd, fam, size = struct.unpack_from("!BBH", data, 12)
    if ver_cmd >> 4 != 2:
        raise ProxyProtocolError(f"unsupported v2 version {ver_cmd >> 4}")
    command = ver_cmd & 0x0F
    if command > 1:
        raise ProxyProtocolError(f"unsupported v2 command {command}")
    length = 16 + size
    if length > MAX_HEADER:
        raise ProxyProtocolError(f"v2 header of {length} bytes is longer than {MAX_HEADER}")
    if len(data) < length:
        return None
    body = data[16:length]
    if command == 0:  # LOCAL: the proxy's own connection (a health check); keep the address
        return ProxyHeader(version=2, length=length, local=True)
    source = destination = None
    family, transport = fam >> 4, fam & 0x0F
    if transport > 2 or family > 3:
        raise ProxyProtocolError(f"unsupported v2 address family 0x{fam:02x}")
    address_size = {0: 0, 1: 12, 2: 36, 3: 216}[family]
    if len(body) < address_size:
        raise ProxyProtocolError(f"v2 addresses need {address_size} bytes, have {len(body)}")
    if family == 1:
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        sport, dport = struct.unpack_from("!HH", body, 8)
        source, destination = (str(src), sport), (str(dst), dport)
    elif family == 2:
        src6, dst6 = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        sport, dport = struct.unpack_from("!HH", body, 32)
        source, destination = (str(src6), sport), (str(dst6), dport)
    spans = _tlv_spans(data, 16 + address_size, length)
    tlvs = tuple((kind, data[start:end]) for kind, start, end in spans)
    for kind, start, end in spans:
        if kind == Tlv.CRC32C:
            _check_crc(data[:length], start, end)
    ssl = next((_parse_ssl(value) for kind, value in tlvs if kind == Tlv.SSL), None)
    return ProxyHeader(version=2, length=length, source=source, destination=destination,
                       tlvs=tlvs, ssl=ssl)


def _tlv_spans(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(type, value start, value end) of each TLV in ``data[start:end]``."""
    out = []
    i = start
    while i < end:
        if end - i < 3:
            raise ProxyProtocolError("truncated v2 TLV")
        kind, size = struct.unpack_from("!BH", data, i)
        if i + 3 + size > end:
            raise ProxyProtocolError(f"v2 TLV 0x{kind:02x} runs past the header")
        out.append((kind, i + 3, i + 3 + size))
        i += 3 + size
    return out


def _parse_ssl(value: bytes) -> SslInfo:
    if len(value) < 5:
        raise ProxyProtocolError("truncated v2 SSL TLV")
    client, verify = struct.unpack_from("!BI", value, 0)
    subs = {kind: value[start:end] for kind, start, end in _tlv_spans(value, 5, len(value))}

    def text(kind: SslSubtype) -> str | None:
        raw = subs.get(kind)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProxyProtocolError(f"v2 SSL {kind.name} is not UTF-8") from None

    return SslInfo(client, verify, text(SslSubtype.VERSION), text(SslSubtype.CN),
                   text(SslSubtype.CIPHER))


def _check_crc(header: bytes, start: int, end: int) -> None:
    if end - start != 4:
        raise ProxyProtocolError("v2 CRC32C TLV is not 4 bytes")
    # The checksum covers the whole header with the CRC field's value zeroed.
    zeroed = header[:start] + b"\x00\x00\x00\x00" + header[end:]
    if crc32c(zeroed) != int.from_bytes(header[start:end], "big"):
        raise ProxyProtocolError("v2 header CRC32C mismatch")


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as the v2 CRC32C TLV uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def encode_v2(source: tuple[str, int] | None, destination: tuple[str, int] | None,
              tlvs: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """A v2 header (PROXY, or LOCAL without addresses); for tests and tools."""
    if source is None or destination is None:
        body, fam, cmd = b"", 0x00, 0x20
    else:
        src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
        body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
        fam, cmd = (0x11 if src.version == 4 else 0x21), 0x21
    for kind, value in tlvs:
        body += struct.pack("!BH", kind, len(value)) + value
    return V2_SIGNATURE + struct.pack("!BBH", cmd, fam, len(body)) + body


def ssl_tlv(client: int, verify: int, cn: str | None = None,
            version: str | None = "TLSv1.3") -> tuple[int, bytes]:
    """A PP2_TYPE_SSL TLV as HAProxy's ``send-proxy-v2-ssl-cn`` builds it."""
    value = struct.pack("!BI", client, verify)
    for kind, text in ((SslSubtype.VERSION, version), (SslSubtype.CN, cn)):
        if text is not None:
            raw = text.encode()
            value += struct.pack("!BH", kind, len(raw)) + raw
    return (Tlv.SSL, value)
