"""Options of ``roost bench``: the command-line flags and the validated settings they make.

The flags follow emqtt-bench where it has one (``-c``, ``-R``, ``-I``, ``-q``, ``-s``,
``-t``, ``-k``, ``-V``, ``--ifaddr``, ``--inflight``) so its users feel at home.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from roost.bench.payload import HEADER_SIZE

SCENARIOS = ("conn", "pub", "sub", "pairs", "fanout", "fanin")
DEFAULT_TOPICS = {
    "conn": "",
    "pub": "bench/%i",
    "sub": "bench/%i",
    "pairs": "bench/pairs/%i",
    "fanout": "bench/fanout/%i",
    "fanin": "bench/fanin/%i",
}
MAX_PAYLOAD = 256 * 1024 * 1024 - 1024


class BenchError(Exception):
    """A bad option or an environment the run cannot use; the message says which."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """Everything a run needs, validated; shipped to the worker processes as is."""

    scenario: str
    host: str = "127.0.0.1"
    port: int = 1883
    clients: int = 1
    rate: float = 1000.0
    msg_rate: float = 1.0
    qos: int = 0
    size: int = 256
    topic: str = ""
    clean: bool = True
    session_expiry: int = 0
    keepalive: int = 60
    protocol: int = 4
    username: str | None = None
    password: str | None = None
    tls: bool = False
    cafile: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    ws: bool = False
    ws_path: str = "/mqtt"
    duration: float | None = None
    inflight: int = 32
    workers: int | None = None
    conns_per_worker: int = 10_000
    conns_per_source: int = 20_000
    ifaddr: tuple[str, ...] = ()
    prefix: str = "bench"
    connect_timeout: float = 10.0
    drain: float = 5.0
    json_path: str | None = None
    plot_path: str | None = None
    quiet: bool = False

    @property
    def publishes(self) -> bool:
        return self.scenario in ("pub", "pairs", "fanout", "fanin")

    @property
    def subscribes(self) -> bool:
        return self.scenario in ("sub", "pairs", "fanout", "fanin")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``roost bench`` flags to ``p`` (a subcommand's parser)."""
    p.add_argument("scenario", choices=SCENARIOS, help=(
        "conn: open and hold connections; pub / sub: publishers or subscribers only; "
        "pairs: N publishers each with its own subscriber; fanout: 1 publisher to N "
        "subscribers; fanin: N publishers to 1 subscriber"))
    g = p.add_argument_group("target")
    g.add_argument("--host", "-H", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    g.add_argument("--port", "-p", type=int, help="broker port (default 1883, 8883 with --tls, "
                   "8083 with --ws, 8084 with both)")
    g.add_argument("--protocol", "-V", type=int, choices=(4, 5), default=4,
                   help="MQTT protocol level: 4 = 3.1.1 (default), 5 = 5.0")
    g.add_argument("--username", "-u", help="username in CONNECT")
    g.add_argument("--password", "-P", help="password in CONNECT")
    g.add_argument("--tls", action="store_true", help="connect with TLS")
    g.add_argument("--cafile", help="CA bundle to verify the broker (with --tls)")
    g.add_argument("--cert", help="client certificate for mutual TLS")
    g.add_argument("--key", help="private key of --cert")
    g.add_argument("--insecure", action="store_true",
                   help="do not verify the broker's certificate or host name")
    g.add_argument("--ws", action="store_true", help="MQTT over WebSocket (subprotocol mqtt)")
    g.add_argument("--ws-path", default="/mqtt", help="WebSocket path (default /mqtt)")

    g = p.add_argument_group("clients")
    g.add_argument("-c", "--clients", type=int, default=1, help=(
        "connections (conn, pub, sub), publisher/subscriber pairs (pairs), subscribers "
        "(fanout) or publishers (fanin); default 1"))
    g.add_argument("-R", "--rate", type=float, default=1000.0,
                   help="connections opened per second, all workers together (0: no limit; "
                   "default 1000)")
    g.add_argument("--clean", dest="clean", action="store_true", default=True,
                   help="clean sessions (default)")
    g.add_argument("--persistent", dest="clean", action="store_false",
                   help="persistent sessions (clean session 0 / clean start 0)")
    g.add_argument("-x", "--session-expiry", type=int, default=None,
                   help="MQTT 5 session expiry in seconds (default 0, or 3600 with "
                   "--persistent)")
    g.add_argument("-k", "--keepalive", type=int, default=60, help="keepalive seconds (60)")
    g.add_argument("--prefix", default="bench",
                   help="client id prefix: ids are PREFIX-pub-N, PREFIX-sub-N, PREFIX-conn-N")
    g.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for CONNACK (10)")

    g = p.add_argument_group("messages")
    rate = g.add_mutually_exclusive_group()
    rate.add_argument("-I", "--interval", type=float,
                      help="milliseconds between messages of one publisher (default 1000)")
    rate.add_argument("--msg-rate", type=float,
                      help="messages per second per publisher; 0 = as fast as possible")
    g.add_argument("-q", "--qos", type=int, choices=(0, 1, 2), default=0, help="QoS (0)")
    g.add_argument("-s", "--size", type=int, default=256,
                   help=f"payload bytes, at least {HEADER_SIZE} (default 256)")
    g.add_argument("-t", "--topic", help=(
        "topic template, %%i = client number (from 1); subscribers of fanin subscribe "
        "with %%i replaced by +"))
    g.add_argument("--inflight", type=int, default=32,
                   help="unacknowledged QoS 1/2 messages per publisher (32)")

    g = p.add_argument_group("run")
    g.add_argument("-d", "--duration", type=float,
                   help="seconds of load after every client is connected (default: until "
                   "Ctrl-C)")
    g.add_argument("--drain", type=float, default=5.0,
                   help="seconds to wait for messages still in flight at the end (5)")
    g.add_argument("--workers", type=int,
                   help="worker processes (default: one per --conns-per-worker clients)")
    g.add_argument("--conns-per-worker", type=int, default=10_000,
                   help="connections per worker process (10000)")
    g.add_argument("--ifaddr", help="comma-separated source addresses to spread clients over "
                   "(default: 127.0.0.x when the broker is on loopback)")
    g.add_argument("--conns-per-source", type=int, default=20_000,
                   help="connections per automatic 127.0.0.x source address (20000)")
    g.add_argument("--json", dest="json_path", metavar="FILE", help="write results as JSON")
    g.add_argument("--plot", dest="plot_path", metavar="FILE",
                   help="write a PNG of rates and latency over time (needs roost[bench])")
    g.add_argument("--quiet", action="store_true", help="no progress lines")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise BenchError(message)


def options_from_args(a: argparse.Namespace) -> BenchOptions:
    """Validate parsed flags into options; raises BenchError naming the bad flag."""
    port = a.port
    if port is None:
        port = {(False, False): 1883, (True, False): 8883,
                (False, True): 8083, (True, True): 8084}[(a.tls, a.ws)]
    _check(0 < port <= 65535, f"--port: expected 1 to 65535, got {port}")
    _check(a.clients >= 1, f"--clients: expected at least 1, got {a.clients}")
    _check(a.rate >= 0, f"--rate: expected 0 or more, got {a.rate}")
    if a.interval is not None:
        _check(a.interval > 0, f"--interval: expected more than 0 ms, got {a.interval}")
        msg_rate = 1000.0 / a.interval
    elif a.msg_rate is not None:
        _check(a.msg_rate >= 0, f"--msg-rate: expected 0 or more, got {a.msg_rate}")
        msg_rate = a.msg_rate
    else:
        msg_rate = 1.0
    _check(HEADER_SIZE <= a.size <= MAX_PAYLOAD,
           f"--size: expected {HEADER_SIZE} to {MAX_PAYLOAD} bytes (the payload carries a "
           f"{HEADER_SIZE}-byte sequence and timestamp header), got {a.size}")
    _check(0 <= a.keepalive <= 65535, f"--keepalive: expected 0 to 65535, got {a.keepalive}")
    _check(1 <= a.inflight <= 65535, f"--inflight: expected 1 to 65535, got {a.inflight}")
    _check(a.duration is None or a.duration > 0,
           f"--duration: expected more than 0 s, got {a.duration}")
    _check(a.drain >= 0, f"--drain: expected 0 or more, got {a.drain}")
    _check(a.connect_timeout > 0, "--connect-timeout: expected more than 0 s")
    _check(a.workers is None or a.workers >= 1, "--workers: expected at least 1")
    _check(a.conns_per_worker >= 1, "--conns-per-worker: expected at least 1")
    _check(a.conns_per_source >= 1, "--conns-per-source: expected at least 1")
    expiry = a.session_expiry
    if expiry is None:
        expiry = 0 if a.clean else 3600
    _check(0 <= expiry <= 0xFFFFFFFF, f"--session-expiry: expected 0 to 4294967295, "
           f"got {expiry}")
    for flag in ("cafile", "cert", "key"):
        path = getattr(a, flag)
        _check(path is None or os.path.isfile(path), f"--{flag}: no such file: {path}")
    _check(a.key is None or a.cert is not None, "--key needs --cert")
    _check(not (a.cafile or a.cert or a.insecure) or a.tls,
           "--cafile, --cert and --insecure need --tls")
    _check(a.ws_path.startswith("/"), f"--ws-path: expected a path starting with /, "
           f"got {a.ws_path!r}")
    topic = a.topic if a.topic is not None else DEFAULT_TOPICS[a.scenario]
    if a.scenario != "conn":
        _check(topic != "", "--topic: expected a non-empty topic")
    if a.scenario in ("pub", "pairs", "fanout", "fanin"):
        _check("+" not in topic and "#" not in topic,
               f"--topic: publishers need a topic name without wildcards, got {topic!r}")
    if a.scenario == "fanin":
        _check("%i" in topic and all("%i" not in level or level == "%i"
                                     for level in topic.split("/")),
               "--topic: fanin needs %i as a whole topic level (the subscriber uses + there)")
    ifaddr = tuple(s.strip() for s in a.ifaddr.split(",") if s.strip()) if a.ifaddr else ()
    return BenchOptions(
        scenario=a.scenario, host=a.host, port=port, clients=a.clients, rate=a.rate,
        msg_rate=msg_rate, qos=a.qos, size=a.size, topic=topic, clean=a.clean,
        session_expiry=expiry, keepalive=a.keepalive, protocol=a.protocol,
        username=a.username, password=a.password, tls=a.tls, cafile=a.cafile,
        cert=a.cert, key=a.key, insecure=a.insecure, ws=a.ws, ws_path=a.ws_path,
        duration=a.duration, inflight=a.inflight, workers=a.workers,
        conns_per_worker=a.conns_per_worker, conns_per_source=a.conns_per_source,
        ifaddr=ifaddr, prefix=a.prefix, connect_timeout=a.connect_timeout, drain=a.drain,
        json_path=a.json_path, plot_path=a.plot_path, quiet=a.quiet,
    )
