"""Real nats-server processes for cluster tests: the pinned binary (roost.cluster.natsbin),
on loopback, free ports, JetStream with its store in a temp directory.

``nats_cluster()`` starts N servers (3 by default) routed into one cluster with
``sync_interval: always``, waits until JetStream has a meta leader that every server
knows and every server reports healthy, and stops and removes everything on the way
out, test failure included. ``nats_cluster(1, sync_always=False)`` gives a lone server
with NATS's default 2-minute sync: what preflight must complain about.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roost.cluster.natsbin import nats_server_path
from roost.cluster.natsconf import free_ports, meta_leader, server_config

HOST = "127.0.0.1"


def get_json(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """A monitoring endpoint's JSON (``/jsz``, ``/varz``, ``/healthz``)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:  # /healthz answers 503 with a JSON body
        body = exc.read()
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


@dataclass
class NatsServer:
    """One nats-server process; ``start()`` again after ``stop()`` or ``kill()`` brings
    it back with the same ports and store."""

    name: str
    client_port: int
    cluster_port: int
    http_port: int
    dir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "nats.log"

    def write_config(self, cluster: str | None, routes: list[int], sync_always: bool,
                     jetstream: bool = True) -> None:
        (self.dir / "nats.conf").write_text(server_config(
            name=self.name, host=HOST, client_port=self.client_port,
            http_port=self.http_port, log_file=self.log_path,
            store_dir=self.dir / "store" if jetstream else None, cluster=cluster,
            cluster_port=self.cluster_port, routes=routes, sync_always=sync_always))

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(nats_server_path()), "-c", str(self.dir / "nats.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def jsz(self) -> dict[str, Any]:
        return get_json(self.monitor_url + "/jsz")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (nats-server shuts down cleanly), then SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.wait(5.0)

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class NatsCluster:
    servers: list[NatsServer]
    name: str | None
    jetstream: bool = True

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def monitor_urls(self) -> list[str]:
        return [s.monitor_url for s in self.servers]

    def ready(self) -> bool:
        """Every server up, healthy, and agreeing on a JetStream meta leader."""
        leaders = set()
        for server in self.servers:
            if not server.running():
                raise RuntimeError(f"nats-server {server.name} exited:\n{server.log_tail()}")
            try:
                jsz = server.jsz()
                health = get_json(server.monitor_url + "/healthz")
            except (OSError, ValueError):
                return False
            if health.get("status") != "ok" or bool(jsz.get("disabled")) == self.jetstream:
                return False
            if self.name is not None and self.jetstream:
                leader = meta_leader(server.name, jsz, len(self.servers))
                if leader is None:
                    return False
                leaders.add(leader)
        return len(leaders) <= 1

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in self.servers)
                raise TimeoutError(f"NATS cluster not ready after {timeout} s\n{logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        for server in self.servers:  # all at once: a cluster shuts down in parallel
            if server.running():
                assert server.process is not None
                server.process.send_signal(signal.SIGTERM)
        for server in self.servers:
            server.wait(10.0)


@contextlib.contextmanager
def nats_cluster(size: int = 3, *, sync_always: bool = True, jetstream: bool = True,
                 name: str = "roost-test", timeout: float = 30.0) -> Iterator[NatsCluster]:
    """``size`` routed nats-servers with JetStream (a lone unclustered one if 1), ready
    to use; stopped and deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="roost-nats-") as tmp:
        ports = free_ports(3 * size)
        servers = []
        for i in range(size):
            d = Path(tmp) / f"n{i + 1}"
            d.mkdir()
            client, route, http = ports[3 * i:3 * i + 3]
            servers.append(NatsServer(f"n{i + 1}", client, route, http, d))
        cluster = NatsCluster(servers, name if size > 1 else None, jetstream)
        for server in servers:
            routes = [s.cluster_port for s in servers if s is not server]
            server.write_config(cluster.name, routes, sync_always, jetstream)
        try:
            for server in servers:
                server.start()
            cluster.wait_ready(timeout)
            yield cluster
        finally:
            cluster.stop()
