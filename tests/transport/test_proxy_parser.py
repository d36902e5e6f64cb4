"""The PROXY protocol parser: v1 and v2, TLVs, malformed and truncated headers."""

from __future__ import annotations

import struct

import pytest

from roost.transport.proxy import (
    MAX_HEADER,
    PP2_CLIENT_CERT_CONN,
    PP2_CLIENT_CERT_SESS,
    PP2_CLIENT_SSL,
    V2_SIGNATURE,
    ProxyProtocolError,
    SslInfo,
    Tlv,
    crc32c,
    encode_v2,
    parse,
    ssl_tlv,
)

MQTT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"


def test_v1_tcp4() -> None:
    data = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 1883\r\n" + MQTT
    h = parse(data)
    assert h is not None
    assert (h.version, h.local) == (1, False)
    assert h.source == ("192.0.2.7", 56324)
    assert h.destination == ("198.51.100.1", 1883)
    assert data[h.length:] == MQTT


def test_v1_tcp6() -> None:
    h = parse(b"PROXY TCP6 2001:db8::1 2001:db8:0:0::2 65535 8883\r\n")
    assert h is not None
    assert h.source == ("2001:db8::1", 65535)
    assert h.destination == ("2001:db8::2", 8883)


def test_v1_unknown_keeps_the_connection_address() -> None:
    for line in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"):
        h = parse(line + MQTT)
        assert h is not None and h.source is None and h.length == len(line)


def test_v1_longest_header_is_accepted() -> None:
    longest = (b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
               b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n")
    assert len(longest) == 107
    assert parse(longest) is not None


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",         # a field missing
    b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",         # IPv6 in TCP4
    b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",            # IPv4 in TCP6
    b"PROXY TCP4 192.0.2.300 198.51.100.1 1 2\r\n",         # not an address
    b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n",       # port too big
    b"PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n",          # leading zero
    b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 2\r\n",
    b"PROXY TCP4  192.0.2.7 198.51.100.1 1 2\r\n",          # two spaces
    b"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
    b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",             # LF without CR
    b"PROXY TCP4 192.0.2.\xff 198.51.100.1 1 2\r\n",         # not ASCII
    b"PROXX TCP4",
    b"proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",
])
def test_v1_malformed(line: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse(line)


def test_v1_too_long_without_crlf() -> None:
    assert parse(b"PROXY UNKNOWN " + b"x" * 92) is None  # 106 bytes: may still end
    with pytest.raises(ProxyProtocolError, match="longer than 107"):
        parse(b"PROXY UNKNOWN " + b"x" * 93)


def test_v1_truncated_needs_more_at_every_length() -> None:
    line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 1883\r\n"
    for i in range(1, len(line)):
        assert parse(line[:i]) is None, i
    assert parse(b"") is None


def test_not_a_header() -> None:
    for data in (MQTT, b"GET / HTTP/1.1\r\n", b"\r\n\r\n\x01"):
        with pytest.raises(ProxyProtocolError, match="no PROXY protocol header"):
            parse(data)


def test_v2_proxy_ipv4_and_ipv6() -> None:
    data = encode_v2(("192.0.2.7", 40000), ("198.51.100.1", 1883)) + MQTT
    h = parse(data)
    assert h is not None
    assert (h.version, h.local, h.source, h.destination) == (
        2, False, ("192.0.2.7", 40000), ("198.51.100.1", 1883))
    assert data[h.length:] == MQTT
    h = parse(encode_v2(("2001:db8::7", 1), ("2001:db8::1", 2)))
    assert h is not None and h.source == ("2001:db8::7", 1)


def test_v2_golden_bytes() -> None:
    data = (V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes([127, 0, 0, 2, 127, 0, 0, 1])
            + struct.pack("!HH", 5555, 1883))
    assert encode_v2(("127.0.0.2", 5555), ("127.0.0.1", 1883)) == data
    h = parse(data)
    assert h is not None and h.source == ("127.0.0.2", 5555) and h.length == 28


def test_v2_local_keeps_the_connection_address() -> None:
    data = encode_v2(None, None) + MQTT
    h = parse(data)
    assert h is not None and h.local and h.source is None and h.length == 16
    # LOCAL with addresses (HAProxy's health checks may send them): still ignored.
    data = V2_SIGNATURE + b"\x20\x11\x00\x0c" + bytes(12)
    h = parse(data)
    assert h is not None and h.local and h.source is None


def test_v2_unspec_and_unix_families_keep_the_connection_address() -> None:
    h = parse(V2_SIGNATURE + b"\x21\x00\x00\x00")
    assert h is not None and not h.local and h.source is None
    h = parse(V2_SIGNATURE + b"\x21\x31\x00\xd8" + bytes(216))
    assert h is not None and h.source is None


def test_v2_tlvs_and_ssl() -> None:
    tlvs = ((Tlv.ALPN, b"mqtt"), (Tlv.UNIQUE_ID, b"abc"),
            ssl_tlv(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, cn="device-9"))
    h = parse(encode_v2(("192.0.2.7", 1), ("192.0.2.8", 2), tlvs))
    assert h is not None
    assert (Tlv.ALPN, b"mqtt") in h.tlvs and (Tlv.UNIQUE_ID, b"abc") in h.tlvs
    assert h.ssl == SslInfo(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, "TLSv1.3", "device-9")
    assert h.ssl.verified_certificate


@pytest.mark.parametrize(("client", "verify", "verified"), [
    (PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, True),
    (PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS, 0, True),    # resumed session
    (PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 1, False),   # presented, not verified
    (PP2_CLIENT_SSL, 0, False),                          # TLS without a certificate
    (PP2_CLIENT_CERT_CONN, 0, False),                    # not even TLS
])
def test_ssl_verified_certificate(client: int, verify: int, verified: bool) -> None:
    h = parse(encode_v2(("192.0.2.7", 1), ("192.0.2.8", 2), (ssl_tlv(client, verify, "x"),)))
    assert h is not None and h.ssl is not None
    assert h.ssl.verified_certificate is verified


def test_v2_crc32c() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    base = encode_v2(("192.0.2.7", 1), ("192.0.2.8", 2), ((Tlv.CRC32C, bytes(4)),))
    good = base[:-4] + crc32c(base).to_bytes(4, "big")
    assert parse(good) is not None
    with pytest.raises(ProxyProtocolError, match="CRC32C mismatch"):
        parse(base[:-4] + (crc32c(base) ^ 1).to_bytes(4, "big"))


def test_v2_truncated_needs_more_at_every_length() -> None:
    data = encode_v2(("192.0.2.7", 1), ("192.0.2.8", 2), (ssl_tlv(1, 0, "cn"),))
    for i in range(1, len(data)):
        assert parse(data[:i]) is None, i
    assert parse(data) is not None


@pytest.mark.parametrize(("data", "error"), [
    (V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12), "version 1"),
    (V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12), "command 2"),
    (V2_SIGNATURE + b"\x21\x41\x00\x0c" + bytes(12), "address family"),
    (V2_SIGNATURE + b"\x21\x13\x00\x0c" + bytes(12), "address family"),
    (V2_SIGNATURE + b"\x21\x11\x00\x08" + bytes(8), "need 12 bytes"),
    (V2_SIGNATURE + b"\x21\x21\x00\x0c" + bytes(12), "need 36 bytes"),
    (V2_SIGNATURE + b"\x21\x11\x00\x0e" + bytes(14), "truncated v2 TLV"),
    (V2_SIGNATURE + b"\x21\x11\x00\x10" + bytes(12) + b"\x01\x00\x05\x00", "runs past"),
    (V2_SIGNATURE + b"\x21\x11\x00\x10" + bytes(12) + b"\x20\x00\x01\x00", "SSL TLV"),
    (V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes(11), None),  # truncated: need more
])
def test_v2_malformed(data: bytes, error: str | None) -> None:
    if error is None:
        assert parse(data) is None
        return
    with pytest.raises(ProxyProtocolError, match=error):
        parse(data)


def test_v2_longer_than_the_limit_fails_before_it_arrives() -> None:
    size = MAX_HEADER - 16 + 1
    with pytest.raises(ProxyProtocolError, match="longer than 536"):
        parse(V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", size))
    assert parse(V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", size - 1)) is None


def test_ssl_cn_must_be_utf8() -> None:
    bad = (Tlv.SSL, struct.pack("!BI", 7, 0) + b"\x22\x00\x02\xff\xfe")
    with pytest.raises(ProxyProtocolError, match="not UTF-8"):
        parse(encode_v2(("192.0.2.7", 1), ("192.0.2.8", 2), (bad,)))
