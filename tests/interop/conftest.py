"""Interop helpers: third-party MQTT clients (paho-mqtt in process; mosquitto_pub,
mosquitto_sub and an MQTT.js script as subprocesses) talking to a real broker process.

Every subprocess is started through the ``spawn`` fixture, which kills whatever is still
running at teardown, and every wait has a timeout, so a misbehaving broker fails a test
instead of hanging the run.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.broker import BrokerProcess

MQTTJS_DIR = Path(__file__).resolve().parent / "mqttjs"
CLIENT_JS = MQTTJS_DIR / "client.js"
HOST = "127.0.0.1"


# -- Subprocess clients --------------------------------------------------------------


class ClientProcess:
    """A client subprocess; threads collect its stdout and stderr line by line."""

    def __init__(self, args: list[str], cwd: Path | None = None,
                 stdin_text: str | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            args, cwd=cwd, text=True,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors),
                             daemon=True),
        ]
        for t in self._readers:
            t.start()
        if stdin_text is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin_text)
            self.proc.stdin.close()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def describe(self) -> str:
        return (f"command: {' '.join(self.args)}\nexit: {self.proc.poll()}\n"
                f"stdout:\n" + "\n".join(self.lines) + "\nstderr:\n" + "\n".join(self.errors))

    def wait_for(self, predicate: Callable[[str], bool], what: str,
                 timeout: float = 10.0) -> str:
        """The first stdout line matching ``predicate``; fails on timeout or exit."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._readers[0].is_alive():
                    raise AssertionError(f"exited before {what}\n{self.describe()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}\n{self.describe()}")
                self._cond.wait(min(left, 0.1))

    def finish(self, timeout: float = 10.0) -> int:
        """Wait for a normal exit and for all output; kill and fail on timeout."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"did not exit within {timeout}s\n{self.describe()}") from None
        for t in self._readers:
            t.join(5)
        return rc

    def finish_ok(self, timeout: float = 10.0) -> None:
        rc = self.finish(timeout)
        assert rc == 0, f"exit status {rc}\n{self.describe()}"

    def kill(self) -> None:
        """SIGKILL: the client gets no chance to send DISCONNECT."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be caught
            pass

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


Spawn = Callable[..., ClientProcess]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start client subprocesses; any still running at teardown are killed."""
    started: list[ClientProcess] = []

    def make(args: list[str], cwd: Path | None = None,
             stdin_text: str | None = None) -> ClientProcess:
        p = ClientProcess(args, cwd, stdin_text)
        started.append(p)
        return p

    yield make
    for p in started:
        p.kill()
        for stream in (p.proc.stdout, p.proc.stderr, p.proc.stdin):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="session")
def mosquitto_bins() -> None:
    """Fail (not skip) when the Debian mosquitto-clients are missing: `make test`
    installs them."""
    missing = [b for b in ("mosquitto_pub", "mosquitto_sub", "stdbuf")
               if shutil.which(b) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install the Debian package "
                    "mosquitto-clients (`make system-deps` or `make test` does)",
                    pytrace=False)


@pytest.fixture(scope="session")
def mqttjs_ready() -> None:
    """Fail (not skip) when Node.js or MQTT.js is missing: `make test` runs `npm ci`."""
    if shutil.which("node") is None:
        pytest.fail("node not found: install Node.js (`make system-deps` or `make test`)",
                    pytrace=False)
    if not (MQTTJS_DIR / "node_modules" / "mqtt" / "package.json").is_file():
        pytest.fail(f"MQTT.js is not installed in {MQTTJS_DIR / 'node_modules'}: run "
                    f"`make test`, or `npm ci` in {MQTTJS_DIR}", pytrace=False)


# -- Command lines -------------------------------------------------------------------


def mosquitto_version(protocol: int) -> str:
    return {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}[protocol]


def mosquitto_sub_args(port: int, topic: str, qos: int, protocol: int, count: int,
                       *extra: str) -> list[str]:
    """mosquitto_sub printing each message as JSON, with debug lines ("Subscribed")
    so the test can tell when the subscription is in place. ``stdbuf -oL`` because
    mosquitto_sub does not flush its debug lines when stdout is a pipe."""
    return ["stdbuf", "-oL", "mosquitto_sub", "-h", HOST, "-p", str(port),
            "-V", mosquitto_version(protocol), "-t", topic, "-q", str(qos),
            "-C", str(count), "-W", "15", "-d", "-F", "%j", *extra]


def mosquitto_pub_args(port: int, topic: str, qos: int, protocol: int,
                       *extra: str) -> list[str]:
    return ["mosquitto_pub", "-h", HOST, "-p", str(port), "-V", mosquitto_version(protocol),
            "-t", topic, "-q", str(qos), *extra]


def start_mosquitto_sub(spawn: Spawn, port: int, topic: str, qos: int, protocol: int,
                        count: int, *extra: str) -> ClientProcess:
    sub = spawn(mosquitto_sub_args(port, topic, qos, protocol, count, *extra))
    sub.wait_for(lambda line: line.startswith("Subscribed"), "mosquitto_sub SUBACK")
    return sub


def run_mosquitto_pub(spawn: Spawn, port: int, topic: str, qos: int, protocol: int,
                      *extra: str, stdin_text: str | None = None) -> None:
    spawn(mosquitto_pub_args(port, topic, qos, protocol, *extra),
          stdin_text=stdin_text).finish_ok()


def mqttjs_args(mode: str, port: int, protocol: int, *extra: str) -> list[str]:
    return ["node", str(CLIENT_JS), mode, "--port", str(port), "--protocol", str(protocol),
            *extra]


def start_mqttjs_sub(spawn: Spawn, port: int, topic: str, qos: int, protocol: int,
                     count: int, *extra: str) -> ClientProcess:
    sub = spawn(mqttjs_args("sub", port, protocol, "--topic", topic, "--qos", str(qos),
                            "--count", str(count), "--timeout", "15", *extra),
                cwd=MQTTJS_DIR)
    sub.wait_for(lambda line: '"event":"subscribed"' in line, "MQTT.js SUBACK")
    return sub


def run_mqttjs_pub(spawn: Spawn, port: int, topic: str, qos: int, protocol: int,
                   messages: list[str], *extra: str) -> None:
    args = ["--topic", topic, "--qos", str(qos)]
    for m in messages:
        args += ["--message", m]
    spawn(mqttjs_args("pub", port, protocol, *args, *extra), cwd=MQTTJS_DIR).finish_ok()


def mqttjs_messages(proc: ClientProcess) -> list[dict[str, Any]]:
    return [m for m in proc.json_lines() if m["event"] == "message"]


def mosquitto_messages(proc: ClientProcess) -> list[dict[str, Any]]:
    return proc.json_lines()


# -- paho-mqtt -----------------------------------------------------------------------


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: list[tuple[str, str]] | None
    dup: bool = False


class PahoClient:
    """A paho-mqtt client on its own network thread, with blocking helpers."""

    def __init__(self, port: int, protocol: int, client_id: str = "",
                 clean: bool = True, session_expiry: int | None = None,
                 receive_maximum: int | None = None) -> None:
        self.port = port
        self.protocol = protocol
        self.clean = clean
        self.session_expiry = session_expiry
        self.receive_maximum = receive_maximum
        version = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}[protocol]
        kwargs: dict[str, Any] = {} if protocol == 5 else {"clean_session": clean}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=version, **kwargs)
        self.messages: queue.Queue[Received] = queue.Queue()
        self.connected = threading.Event()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.session_present: bool | None = None
        self.connect_rc: Any = None
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.started = False

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any,
                    props: Any) -> None:
        self.session_present = bool(flags.session_present)
        self.connect_rc = rc
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        user = None
        if self.protocol == 5:
            user = list(getattr(msg.properties, "UserProperty", []) or [])
        self.messages.put(Received(msg.topic, msg.payload, msg.qos, bool(msg.retain), user,
                                   bool(msg.dup)))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: list[Any],
                      props: Any) -> None:
        self.subacks.put(codes)

    def will_set(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        self.client.will_set(topic, payload, qos, retain)

    def connect(self) -> PahoClient:
        kwargs: dict[str, Any] = {}
        if self.protocol == 5:
            kwargs["clean_start"] = self.clean
            props = Properties(PacketTypes.CONNECT)
            if self.session_expiry is not None:
                props.SessionExpiryInterval = self.session_expiry
            if self.receive_maximum is not None:
                props.ReceiveMaximum = self.receive_maximum
            kwargs["properties"] = props
        self.client.connect(HOST, self.port, keepalive=30, **kwargs)
        self.client.loop_start()
        self.started = True
        assert self.connected.wait(5), "paho: no CONNACK within 5 s"
        assert not self.connect_rc.is_failure, f"paho: CONNACK {self.connect_rc}"
        return self

    def subscribe(self, topic: str, qos: int) -> list[int]:
        self.client.subscribe(topic, qos)
        try:
            codes = self.subacks.get(timeout=5)
        except queue.Empty:
            raise AssertionError("paho: no SUBACK within 5 s") from None
        return [int(c.value) for c in codes]

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                user_properties: list[tuple[str, str]] | None = None) -> None:
        props = None
        if user_properties:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = user_properties
        info = self.client.publish(topic, payload, qos, retain, props)
        info.wait_for_publish(5)
        assert info.is_published(), f"paho: publish of {payload!r} not acknowledged"

    def expect(self, timeout: float = 5.0) -> Received:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"paho: no message within {timeout} s") from None

    def expect_nothing(self, wait: float = 0.3) -> None:
        try:
            msg = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"paho: unexpected message {msg!r}")

    def disconnect(self) -> None:
        if self.started:
            self.client.disconnect()
            self.client.loop_stop()
            self.started = False


PahoFactory = Callable[..., PahoClient]


@pytest.fixture
def paho(broker: BrokerProcess) -> Iterator[PahoFactory]:
    """Make paho clients for ``broker`` (not yet connected); stopped at teardown."""
    made: list[PahoClient] = []

    def make(protocol: int, client_id: str = "", clean: bool = True,
             session_expiry: int | None = None,
             receive_maximum: int | None = None) -> PahoClient:
        c = PahoClient(broker.port, protocol, client_id, clean, session_expiry,
                       receive_maximum)
        made.append(c)
        return c

    yield make
    for c in made:
        c.disconnect()
