"""Fault injection against real broker processes: kill -9, a full disk, restarts.

Helpers shared by the fault tests: a tmpfs mount, a pipelined publisher whose reader
thread collects acknowledgements, and persistent subscribers that go offline and later
drain their queue over raw sockets.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from roost.mqtt import (
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    ReasonCode,
    encode,
)
from roost.mqtt.properties import Properties
from tests.broker import Closed, RawClient

# Enough queue room that no test message is dropped for a full queue (default 1000).
BIG_QUEUES = "[mqtt]\nmax_queued_messages = 100000\n"


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. "600k") on ``path`` (needs root, as in CI)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def resize_tmpfs(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def connect(port: int, client_id: str, level: int, clean: bool = True,
            expiry: int = 0, timeout: float = 10.0) -> tuple[RawClient, bool]:
    """A raw client connected by MQTT; returns it and the CONNACK's session present."""
    client = RawClient(port, level, timeout=timeout)
    props = Properties()
    if level == 5 and expiry:
        props.session_expiry_interval = expiry
    connack = client.connect(client_id, clean=clean, properties=props)
    assert connack.reason_code == ReasonCode.SUCCESS, connack
    return client, bool(connack.session_present)


class Publisher:
    """Publishes over one raw connection as fast as a window of unacknowledged messages
    allows. A reader thread records every PUBACK/PUBREC (answering PUBREC with PUBREL)
    and PUBCOMP, so acknowledgements are counted while sending goes on."""

    def __init__(self, port: int, client_id: str, level: int = 5, qos: int = 1,
                 clean: bool = True, expiry: int = 0, window: int = 500) -> None:
        self.client, self.session_present = connect(port, client_id, level, clean, expiry)
        self.client.sock.settimeout(None)
        self.level = level
        self.qos = qos
        self.window = window
        self._slots = threading.Semaphore(window)
        self._send_lock = threading.Lock()
        # packet id -> reason code of its PUBACK (QoS 1) or PUBREC (QoS 2)
        self.acks: dict[int, ReasonCode] = {}
        self.completed: set[int] = set()  # QoS 2: PUBCOMP received
        self.successes = 0
        self.on_success: Callable[[int], None] | None = None
        self.closed = threading.Event()
        self.disconnect_reason: ReasonCode | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- Sending ----------------------------------------------------------------------

    def send(self, *packets: object) -> None:
        data = b"".join(encode(p, self.level) for p in packets)
        with self._send_lock:
            self.client.sock.sendall(data)

    def publish(self, topic: str, payload: bytes, packet_id: int, retain: bool = False,
                dup: bool = False) -> bool:
        """Send one PUBLISH once a window slot is free; False if the connection is gone."""
        while not self._slots.acquire(timeout=0.1):
            if self.closed.is_set():
                return False
        if self.closed.is_set():
            return False
        try:
            self.send(Publish(topic, payload, self.qos, retain, dup, packet_id, Properties()))
        except OSError:
            return False
        return True

    def pubrel(self, packet_id: int) -> bool:
        """Send PUBREL (resuming a QoS 2 flow) once a window slot is free."""
        while not self._slots.acquire(timeout=0.1):
            if self.closed.is_set():
                return False
        try:
            self.send(Pubrel(packet_id))
        except OSError:
            return False
        return True

    def publish_all(self, items: list[tuple[str, bytes]], first_id: int = 1,
                    retain: bool = False) -> int:
        """Publish ``(topic, payload)`` pairs with packet ids from ``first_id``; returns
        how many were sent before the connection went away."""
        for n, (topic, payload) in enumerate(items):
            if not self.publish(topic, payload, first_id + n, retain):
                return n
        return len(items)

    # -- Acknowledgements ----------------------------------------------------------------

    def _read(self) -> None:
        try:
            while True:
                packet = self.client.recv(None)
                if isinstance(packet, Puback):
                    self._acked(packet.packet_id, packet.reason_code)
                    self._slots.release()
                elif isinstance(packet, Pubrec):
                    self._acked(packet.packet_id, packet.reason_code)
                    if packet.reason_code.is_error:
                        self._slots.release()
                    else:
                        self.send(Pubrel(packet.packet_id))
                elif isinstance(packet, Pubcomp):
                    self.completed.add(packet.packet_id)
                    self._slots.release()
                elif isinstance(packet, Disconnect):
                    self.disconnect_reason = packet.reason_code
        except (Closed, OSError):
            pass
        finally:
            self.closed.set()

    def _acked(self, packet_id: int, reason: ReasonCode) -> None:
        self.acks[packet_id] = reason
        if not reason.is_error:
            self.successes += 1
            if self.on_success is not None:
                self.on_success(self.successes)

    def succeeded(self) -> set[int]:
        return {pid for pid, reason in self.acks.items() if not reason.is_error}

    def wait(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; acks={len(self.acks)} "
                                     f"completed={len(self.completed)}")
            time.sleep(0.005)

    def close(self) -> None:
        try:
            self.client.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
        except OSError:
            pass
        self.client.sock.close()
        self._reader.join(5)


@dataclass
class Drained:
    """What a subscriber received: payload -> count, and which arrived with DUP set."""

    counts: Counter[bytes] = field(default_factory=Counter)
    dups: Counter[bytes] = field(default_factory=Counter)
    packets: list[Publish] = field(default_factory=list)

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.counts.values() if n > 1)

    def duplicates_without_dup_flag(self) -> list[bytes]:
        """Payloads received more than once where a repeat did not carry DUP."""
        return [p for p, n in self.counts.items() if n > 1 and n - self.dups[p] > 1]


def drain(client: RawClient, until: Callable[[Drained], bool], quiet: float = 0.5,
          idle: float = 5.0, timeout: float = 60.0) -> Drained:
    """Receive and acknowledge PUBLISHes (the QoS 2 receiver flow included) until
    ``until`` holds and then nothing arrives for ``quiet`` seconds, or nothing at all
    arrives for ``idle`` seconds (the caller's assertions then say what is missing)."""
    got = Drained()
    level = client.level
    deadline = time.monotonic() + timeout
    acks: list[bytes] = []
    while True:
        if not client.pending and acks:
            client.send_raw(b"".join(acks))
            acks.clear()
        try:
            packet = client.recv(quiet if until(got) else idle)
        except TimeoutError:
            return got
        if isinstance(packet, Publish):
            got.counts[packet.payload] += 1
            got.dups[packet.payload] += packet.dup
            got.packets.append(packet)
            if packet.qos == 1:
                acks.append(encode(Puback(packet.packet_id), level))
            elif packet.qos == 2:
                acks.append(encode(Pubrec(packet.packet_id), level))
        elif isinstance(packet, Pubrel):
            acks.append(encode(Pubcomp(packet.packet_id), level))
        if time.monotonic() > deadline:
            raise AssertionError("subscriber kept receiving past its deadline")
