"""Hardening tests: limits, malformed input, floods and fuzzing, all against real broker
processes over sockets, each with a well-behaved bystander that must keep being served."""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

from roost.mqtt import Disconnect, Puback, Publish, ReasonCode
from tests.broker import BrokerProcess, Closed, RawClient

_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


class Bystander:
    """A well-behaved client subscribed to its own topic, connected before the abuse
    and checked after it: still connected, still publishing and receiving."""

    def __init__(self, port: int, level: int = 4) -> None:
        self.c = RawClient(port, level)
        self.topic = f"hard/bystander/{unique('t')}"
        assert self.c.connect(unique("bystander")).reason_code == ReasonCode.SUCCESS
        assert self.c.subscribe(self.topic, qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
        self.sent = 0

    def check(self, rounds: int = 2, timeout: float = 5.0) -> None:
        for _ in range(rounds):
            self.sent += 1
            pid = self.sent % 65535 + 1
            payload = f"alive {self.sent}".encode()
            self.c.publish(self.topic, payload, qos=1, packet_id=pid)
            got = [self.c.recv(timeout), self.c.recv(timeout)]
            acks = [p for p in got if isinstance(p, Puback)]
            msgs = [p for p in got if isinstance(p, Publish)]
            assert len(acks) == 1 and len(msgs) == 1, got
            assert (acks[0].packet_id, acks[0].reason_code) == (pid, ReasonCode.SUCCESS)
            assert (msgs[0].topic, msgs[0].payload) == (self.topic, payload)
            assert msgs[0].packet_id is not None
            self.c.send(Puback(msgs[0].packet_id))

    def close(self) -> None:
        self.c.close()


def assert_closed(c: RawClient, level: int, reason: ReasonCode, timeout: float = 5.0) -> None:
    """The broker closed ``c``: DISCONNECT with ``reason`` first for 5.0, nothing for 3.x."""
    got = c.expect_closed(timeout)
    if level == 5:
        assert got == [Disconnect(reason)], got
    else:
        assert got == [], got


def read_until_closed(c: RawClient, timeout: float = 5.0) -> bytes:
    """Raw bytes the broker sent before closing (fails if it does not close)."""
    data = b""
    c.sock.settimeout(timeout)
    while True:
        try:
            chunk = c.sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def is_closed_now(c: RawClient, wait: float = 0.2) -> bool:
    try:
        c.recv(wait)
    except Closed:
        return True
    except TimeoutError:
        return False
    finally:
        c.sock.settimeout(5.0)
    return False


_BREACH = re.compile(r"limit (\w+) exceeded: .*\(breach (\d+) of \1\)")


def breaches(broker: BrokerProcess, limit: str) -> list[tuple[str, int]]:
    """(log line, running count) of every logged breach of ``limit``."""
    out = []
    for line in broker.log().splitlines():
        m = _BREACH.search(line)
        if m and m.group(1) == limit:
            out.append((line, int(m.group(2))))
    return out


def wait_for_breach(broker: BrokerProcess, limit: str, needle: str = "",
                    timeout: float = 3.0) -> tuple[str, int]:
    """The first logged breach of ``limit`` whose line contains ``needle``."""
    deadline = time.monotonic() + timeout
    while True:
        for line, count in breaches(broker, limit):
            if needle in line:
                return line, count
        if time.monotonic() > deadline:
            raise AssertionError(f"no breach of {limit} logged with {needle!r}:\n"
                                 + broker.log()[-3000:])
        time.sleep(0.05)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")

