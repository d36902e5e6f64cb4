"""Running a real Roost broker process for tests, and a raw-socket MQTT client.

The broker is started as a subprocess (``python -m roost.cli serve``) on a free port, so
tests talk to it exactly as devices do: over TCP, with nothing shared in memory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from roost.mqtt import Decoder, Packet, ReasonCode, encode
from roost.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Publish,
    Suback,
    Subscribe,
    SubscriptionRequest,
)
from roost.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerProcess:
    """A ``roost serve`` subprocess; ``config`` is TOML text written to a temp file.

    ``data_dir`` defaults to ``data`` in a fresh temp directory. ``start()`` may be called
    again after ``stop()`` or ``kill9()``: the broker comes back on the same port with the
    same data directory, and its output is appended to the same log.
    """

    def __init__(self, config: str = "", port: int | None = None,
                 data_dir: str | Path | None = None, http_port: int | None = None) -> None:
        self.port = port or free_port()
        # The HTTP operations endpoint: off unless a port is given (0 picks a free one).
        self.http_port = free_port() if http_port == 0 else http_port
        self.host = "127.0.0.1"
        self.dir = tempfile.mkdtemp(prefix="roost-test-")
        self.log_path = Path(self.dir) / "broker.log"
        self.data_dir = Path(data_dir) if data_dir is not None else Path(self.dir) / "data"
        self.config_text = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> BrokerProcess:
        """Run the broker; unless ``wait`` is false, return once its MQTT port accepts
        connections."""
        args = [sys.executable, "-m", "roost.cli", "serve", "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        args += ["--http", f"127.0.0.1:{self.http_port}" if self.http_port else ""]
        if self.config_text:
            cfg = Path(self.dir) / "roost.toml"
            cfg.write_text(self.config_text)
            args += ["--config", str(cfg)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.starts += 1
        mode = "wb" if self.starts == 1 else "ab"
        self._log = open(self.log_path, mode)  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        return self.start_wait() if wait else self

    def start_wait(self) -> BrokerProcess:
        """Return once the broker started with ``start(wait=False)`` accepts MQTT
        connections; raise if it exits or does not within 15 s."""
        assert self.proc is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited: {self.log()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"broker did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def kill9(self) -> None:
        """SIGKILL the broker: no shutdown code runs, as in a power cut of the process."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def restart(self, graceful: bool = True) -> BrokerProcess:
        """Stop (SIGTERM, or SIGKILL unless ``graceful``) and start on the same port and
        data directory."""
        if graceful:
            self.stop()
        else:
            self.kill9()
        return self.start()

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` (e.g. SIGTERM for a graceful drain, SIGHUP to reload) to the broker."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the broker to exit on its own; return its exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if hasattr(self, "_log"):
            self._log.close()
        return code

    def wait_log(self, text: str, timeout: float = 10.0, start: int = 0) -> str:
        """Wait until ``text`` appears in the log after character ``start``; return the
        log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if text in log[start:]:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the log: {log[start:]}")
            time.sleep(0.05)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Closed(Exception):
    """The broker closed the connection."""


class RawClient:
    """A byte-level MQTT client for conversations: send packets or raw bytes, expect
    packets back. Uses the project's codec, so golden bytes are checked separately in
    tests/mqtt."""

    def __init__(self, port: int, level: int = 4, host: str = "127.0.0.1",
                 timeout: float = 5.0) -> None:
        self.level = level
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.decoder = Decoder(level)
        self.pending: list[Packet] = []

    def send(self, packet: Packet) -> None:
        self.sock.sendall(encode(packet, self.level))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float | None = None) -> Packet:
        """The next packet; raises Closed if the broker closes, TimeoutError if none."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            while not self.pending:
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError as exc:
                    raise Closed() from exc
                if not data:
                    raise Closed()
                self.pending.extend(self.decoder.feed(data))
            return self.pending.pop(0)
        except TimeoutError as exc:
            raise TimeoutError("no packet from the broker") from exc

    def recv_exact(self, size: int, timeout: float = 5.0) -> bytes:
        """Exactly the next ``size`` bytes the broker sends, undecoded (for byte-exact
        answers; only where no decoded packet is pending)."""
        assert not self.pending and not self.decoder.buffered, self.pending
        self.sock.settimeout(timeout)
        data = b""
        try:
            while len(data) < size:
                chunk = self.sock.recv(size - len(data))
                if not chunk:
                    raise Closed()
                data += chunk
        finally:
            self.sock.settimeout(5.0)
        return data

    def expect(self, cls: type, timeout: float | None = None) -> Packet:
        packet = self.recv(timeout)
        assert isinstance(packet, cls), f"expected {cls.__name__}, got {packet!r}"
        return packet

    def expect_nothing(self, wait: float = 0.3) -> None:
        try:
            packet = self.recv(wait)
        except TimeoutError:
            return
        finally:
            self.sock.settimeout(5.0)
        raise AssertionError(f"expected nothing, got {packet!r}")

    def expect_closed(self, timeout: float = 5.0) -> list[Packet]:
        """Read until the broker closes; return what it sent before closing."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(self.recv(max(0.01, deadline - time.monotonic())))
            except Closed:
                return got
        raise AssertionError(f"connection still open; received {got!r}")

    def connect(self, client_id: str = "", clean: bool = True, keepalive: int = 60,
                properties: Properties | None = None, **kw: object) -> Connack:
        self.send(Connect(client_id, self.level, clean, keepalive,
                          properties=properties or Properties(), **kw))  # type: ignore[arg-type]
        return self.expect(Connack)  # type: ignore[return-value]

    def subscribe(self, topic_filter: str, qos: int = 0, packet_id: int = 1,
                  properties: Properties | None = None, **opts: object) -> Suback:
        self.send(Subscribe(packet_id, [SubscriptionRequest(topic_filter, qos, **opts)],  # type: ignore[arg-type]
                            properties or Properties()))
        return self.expect(Suback)  # type: ignore[return-value]

    def publish(self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False,
                packet_id: int | None = None, properties: Properties | None = None) -> None:
        if qos and packet_id is None:
            packet_id = 1
        self.send(Publish(topic, payload, qos, retain, False, packet_id,
                          properties or Properties()))

    def disconnect(self, packet: Disconnect | None = None) -> None:
        try:
            self.send(packet or Disconnect())
        finally:
            self.close()

    def close(self) -> None:
        self.sock.close()


def online(factory: Callable[[int], RawClient], level: int, client_id: str,
           **kw: object) -> RawClient:
    """A client from ``factory`` (the ``client`` fixture), connected with success."""
    c = factory(level)
    ack = c.connect(client_id, **kw)  # type: ignore[arg-type]
    assert ack.reason_code == ReasonCode.SUCCESS, ack
    return c
