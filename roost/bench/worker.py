"""A worker process: one event loop driving thousands of clients.

It talks to the coordinating process over a pipe. Upward it sends ``ready`` once its
clients are connected (and subscribed), a ``tick`` of counter deltas twice a second,
``stopped`` with each publisher's message count after publishing ends, and ``final``.
Downward it obeys ``go`` (start publishing at a given CLOCK_MONOTONIC time), ``stop``
and ``finish``; ``finish`` may come at any moment (Ctrl-C) and ends the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import signal
import socket
import ssl
import time
from multiprocessing.connection import Connection
from typing import Any

from roost.bench.client import BenchClient, ConnectError
from roost.bench.options import BenchOptions
from roost.bench.payload import PublishTemplate
from roost.bench.plan import FILES_PER_WORKER, PUB, SUB, ClientSpec, WorkerPlan
from roost.bench.tally import Tally
from roost.bench.websocket import WebSocketError
from roost.mqtt import Connect, Properties

TICK_SECONDS = 0.5
MAX_PENDING_CONNECTS = 500
# Lets many connections share a source address as long as their 4-tuples differ: the
# port is chosen at connect() instead of bind() (Linux 4.2+).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectError):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    if isinstance(exc, WebSocketError):
        return f"websocket: {exc}"
    return type(exc).__name__


def tls_context(o: BenchOptions) -> ssl.SSLContext | None:
    if not o.tls:
        return None
    ctx = ssl.create_default_context(cafile=o.cafile)
    if o.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if o.cert:
        ctx.load_cert_chain(o.cert, o.key)
    return ctx


class Worker:
    def __init__(self, plan: WorkerPlan, pipe: Connection, clock_base: float) -> None:
        self.plan = plan
        self.clock_base = clock_base
        self.o = plan.options
        self.pipe = pipe
        self.tally = Tally()
        self.clients: list[BenchClient] = []
        self.commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.ssl = tls_context(self.o)
        self.connect_started = 0.0
        self.connect_ended = 0.0

    def send(self, *message: Any) -> None:
        try:
            self.pipe.send(message)
        except (BrokenPipeError, OSError):
            pass

    def _on_pipe(self) -> None:
        try:
            while self.pipe.poll():
                self.commands.put_nowait(self.pipe.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
            self.commands.put_nowait(("finish",))

    def _connect_packet(self, spec: ClientSpec) -> Connect:
        o = self.o
        props = Properties()
        if o.protocol == 5 and o.session_expiry:
            props.session_expiry_interval = o.session_expiry
        return Connect(spec.client_id, o.protocol, o.clean, o.keepalive, username=o.username,
                       password=o.password.encode() if o.password is not None else None,
                       properties=props)

    async def _open(self, spec: ClientSpec) -> None:
        o, tally = self.o, self.tally
        loop = asyncio.get_running_loop()
        tally.attempted += 1
        started = time.monotonic_ns()
        template = None
        if spec.role == PUB:
            template = PublishTemplate(spec.topic, spec.number, o.qos, o.size, o.protocol)
        ws_host = f"{o.host}:{o.port}" if o.ws else None
        client = BenchClient(spec, tally, o.protocol, ws_host, o.ws_path, template,
                             o.msg_rate, o.inflight)
        client.set_connect(self._connect_packet(spec))
        family = socket.AF_INET6 if ":" in self.plan.target else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            async with asyncio.timeout(o.connect_timeout):
                sock.setblocking(False)
                if spec.source:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    sock.bind((spec.source, 0))
                await loop.sock_connect(sock, (self.plan.target, o.port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.create_connection(
                    lambda: client, sock=sock, ssl=self.ssl,
                    server_hostname=o.host if self.ssl else None)
                await client.connack
                if spec.role == SUB:
                    client.subscribe(o.qos)
                    await client.suback
        except (OSError, TimeoutError, ConnectError, WebSocketError, ssl.SSLError) as exc:
            tally.note_failure(_reason(exc))
            if client.transport is not None:
                client.finishing = True
                client.transport.abort()
            else:
                sock.close()
            return
        client.established = True
        tally.open += 1
        tally.connected += 1
        tally.connect_hist.record(time.monotonic_ns() - started)
        tally.sources[client.local_ip] = tally.sources.get(client.local_ip, 0) + 1
        self.clients.append(client)

    async def connect_all(self) -> None:
        """Open every client, subscribers first, at the plan's rate; then say ``ready``."""
        loop = asyncio.get_running_loop()
        specs = sorted(self.plan.clients, key=lambda s: s.role != SUB)
        rate = self.plan.connect_rate
        pending = asyncio.Semaphore(MAX_PENDING_CONNECTS)
        tasks: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            pending.release()

        self.connect_started = time.monotonic()
        t0 = loop.time()
        subs_left = sum(1 for s in specs if s.role == SUB)
        for k, spec in enumerate(specs):
            if subs_left and spec.role != SUB:
                # publishers start only once every subscriber of this worker is in
                await asyncio.gather(*tasks)
                subs_left = 0
            if rate:
                delay = t0 + k / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await pending.acquire()
            task = asyncio.create_task(self._open(spec))
            tasks.add(task)
            task.add_done_callback(done)
        await asyncio.gather(*tasks)
        self.connect_ended = time.monotonic()
        self.send("ready", {"connected": self.tally.connected, "expecting": self.expecting()})

    def go(self, start_monotonic: float) -> None:
        """Start every publisher, their first messages spread over one interval."""
        loop = asyncio.get_running_loop()
        # asyncio's clock is CLOCK_MONOTONIC, like time.monotonic() in the coordinator
        offset = loop.time() - time.monotonic()
        start = start_monotonic + offset
        pubs = [c for c in self.clients if c.is_publisher and not c.closed]
        spread = 1.0 / self.o.msg_rate if self.o.msg_rate else 0.0
        for k, client in enumerate(pubs):
            client.start_publishing(start + spread * k / max(1, len(pubs)))

    async def stop(self) -> None:
        """Stop publishing; wait (up to the drain time) for QoS 1/2 acknowledgements."""
        pubs = [c for c in self.clients if c.is_publisher]
        for client in pubs:
            client.stop_publishing()
        deadline = time.monotonic() + self.o.drain
        while time.monotonic() < deadline and any(c.inflight and not c.closed for c in pubs):
            await asyncio.sleep(0.02)
        self.send("tick", self.tally.delta())
        self.send("stopped", {c.spec.number: c.seq for c in pubs})

    async def keepalive(self) -> None:
        """PINGREQ from every client that sent nothing during the last half keepalive."""
        if not self.o.keepalive:
            return
        period = self.o.keepalive / 2
        while True:
            await asyncio.sleep(period)
            for client in self.clients:
                if not client.wrote and client.connected and not client.closed:
                    client.ping()
                client.wrote = False

    async def ticker(self) -> None:
        """Report every TICK_SECONDS, in step with the coordinator's seconds (a quarter
        tick off their edges), so each of its seconds gets the same number of ticks."""
        loop = asyncio.get_running_loop()
        base = self.clock_base + (loop.time() - time.monotonic()) + TICK_SECONDS / 2
        k = max(1, int((loop.time() - base) / TICK_SECONDS) + 1)
        while True:
            await asyncio.sleep(max(0.0, base + k * TICK_SECONDS - loop.time()))
            k += 1
            self.send("tick", self.tally.delta())

    def expecting(self) -> dict[int, int]:
        """For each publisher, how many of this worker's subscribers should hear it."""
        expecting: dict[int, int] = {}
        for c in self.clients:
            if c.spec.role == SUB and c.spec.expects is not None and not c.closed:
                for pub in c.spec.expects:
                    expecting[pub] = expecting.get(pub, 0) + 1
        return expecting

    def final(self) -> dict[str, Any]:
        t = self.tally
        return {
            "fail_reasons": t.fail_reasons, "disconnect_reasons": t.disconnect_reasons,
            "sources": t.sources, "received_from": t.received_from,
            "sent_by_pub": {c.spec.number: c.seq for c in self.clients if c.is_publisher},
            "connect_started": self.connect_started, "connect_ended": self.connect_ended,
        }

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self._on_pipe)
        background = [asyncio.create_task(self.ticker()), asyncio.create_task(self.keepalive())]
        connecting = asyncio.create_task(self.connect_all())
        try:
            while True:
                command = await self.commands.get()
                if command[0] == "go":
                    self.go(command[1])
                elif command[0] == "stop":
                    await self.stop()
                elif command[0] == "finish":
                    break
        finally:
            connecting.cancel()
            for task in background:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            for client in self.clients:
                client.disconnect()
            await asyncio.sleep(0.05)  # let the DISCONNECTs leave
            self.send("tick", self.tally.delta())
            self.send("final", self.final())
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(self.pipe.fileno())


def _raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if needed > soft:
        raise OSError(errno.EMFILE, f"worker needs {needed} open files, the limit is {soft}; "
                      "use more workers (--conns-per-worker) or raise ulimit -n")


def worker_main(plan: WorkerPlan, pipe: Connection, clock_base: float) -> None:
    """Entry point of a worker process; ``clock_base`` is the coordinator's start time
    (CLOCK_MONOTONIC, shared by every process on the machine)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    try:
        _raise_file_limit(len(plan.clients) + FILES_PER_WORKER)
        try:
            import uvloop
        except ImportError:
            runner = asyncio.run
        else:
            runner = uvloop.run
        runner(Worker(plan, pipe, clock_base).run())
    except Exception as exc:  # reported to the coordinator, which names the worker
        with contextlib.suppress(OSError):
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()
