"""Bounded fuzzing of a real broker over sockets: random and mutated packet streams, one
connection each. After every stream the broker must have closed the connection (or
answered and closed once we hung up), everything it sent must decode, and a bystander
must still be served; at the end the process is alive and logged no traceback.

``ROOST_FUZZ_EXAMPLES`` sets the number of streams (150 here; ``make fuzz`` runs
20000)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.mqtt import Decoder, ProtocolViolation, encode
from tests.broker import BrokerProcess
from tests.hardening import Bystander
from tests.mqtt.test_roundtrip import connects, packets

EXAMPLES = int(os.environ.get("ROOST_FUZZ_EXAMPLES", "150"))
LEVELS = st.sampled_from([3, 4, 5])

# Bytes that are often meaningful in MQTT: packet type nibbles, varint continuation,
# property identifiers, lengths at the edges.
INTERESTING = st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x10, 0x20, 0x30, 0x3F, 0x7F, 0x80,
                               0x82, 0xC0, 0xE0, 0xF0, 0xFF, 0x26, 0x23, 0x0B, 0x11, 0x21])


@st.composite
def mutated(draw: st.DrawFn, data: bytes, protect: int) -> bytes:
    """``data`` with a few random edits after its first ``protect`` bytes."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "junk",
                                   "repeat"]))
        at = draw(st.integers(protect, max(protect, len(buf))))
        if op == "flip" and at < len(buf):
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(buf):
            buf[at] = draw(INTERESTING)
        elif op == "insert":
            buf[at:at] = bytes([draw(INTERESTING)])
        elif op == "delete" and at < len(buf):
            del buf[at:at + draw(st.integers(1, 4))]
        elif op == "truncate":
            del buf[at:]
        elif op == "junk":
            buf[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif op == "repeat" and at < len(buf):
            end = min(len(buf), at + draw(st.integers(1, 64)))
            buf[end:end] = buf[at:end] * draw(st.integers(1, 3))
    return bytes(buf)


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, bytes]:
    """(level, bytes): mostly a CONNECT then packets of that level, then mutations."""
    level = draw(LEVELS)
    if draw(st.integers(0, 9)) == 0:
        return level, draw(st.binary(max_size=200))
    pieces = [encode(p, level) for p in draw(st.lists(packets(level, connect=False),
                                                      max_size=8))]
    protect = 0
    if draw(st.integers(0, 9)) > 0:
        connect = encode(draw(connects(level)), level)
        pieces.insert(0, connect)
        # Half the time keep CONNECT intact, so the mutations reach connected state.
        protect = len(connect) if draw(st.booleans()) else 0
    return level, draw(mutated(b"".join(pieces), protect))


def decodable(data: bytes) -> bool:
    """Whether the broker's output is whole, valid packets at some protocol level."""
    for level in (4, 5):
        decoder = Decoder(level)
        try:
            decoder.feed(data)
        except ProtocolViolation:
            continue
        if decoder.buffered == 0:
            return True
    return False


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess('[store]\ntype = "memory"\n[mqtt]\nconnect_timeout = 5\n') as proc:
        yield proc


def send_stream(port: int, data: bytes, cuts: list[int]) -> bytes:
    """Send ``data`` in pieces, hang up our side, return all the broker sent back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        start = 0
        try:
            for cut in sorted(cuts) + [len(data)]:
                if cut > start:
                    s.sendall(data[start:cut])
                    start = cut
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed early (EPIPE, ECONNRESET, ENOTCONN): its answer is still readable
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError as exc:
                raise AssertionError(f"broker did not close; sent {got!r}") from exc
            if not chunk:
                break
            got += chunk
        return got


def test_fuzzed_streams_leave_the_broker_serving(broker: BrokerProcess) -> None:
    bystander = Bystander(broker.port, 5)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(streams(), st.lists(st.integers(0, 400), max_size=3))
    def one_stream(case: tuple[int, bytes], cuts: list[int]) -> None:
        _, data = case
        answer = send_stream(broker.port, data, cuts)
        assert decodable(answer), answer
        bystander.check(rounds=1)

    one_stream()
    bystander.check()
    bystander.close()
    assert broker.returncode is None, broker.log()[-3000:]
    log = broker.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:4000]
    assert "Exception in callback" not in log
