"""``roost cluster up|status|scale|down``: a complete local cluster for a laptop or a test.

Everything lives under one directory (``--dir``)::

    DIR/cluster.json            pids, ports and state, read by every subcommand
    DIR/nats-N/nats.conf        nats-server N (JetStream store in DIR/nats-N/store)
    DIR/node-N/roost.toml       Roost node N (its SQLite data in DIR/node-N/data)
    DIR/haproxy.cfg             HAProxy in front, on --host:--port
    DIR/logs/                   nats-N.log, node-N.log, haproxy.log

The processes run detached (their own session), so ``up`` returns and another process
can run ``status``, ``scale`` and ``down`` from ``cluster.json``. HAProxy runs in
master-worker mode (``-W``): a reload is SIGUSR2 to the master, which starts a new worker
on the new configuration, hands it the listening sockets, and lets the old worker finish
its established connections (a soft stop), so no MQTT connection is cut by a reload.

Nothing here imports the NATS client; NATS is watched through its monitoring port.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from roost.cluster.natsbin import nats_server_path
from roost.cluster.natsconf import free_ports, meta_leader, server_config
from roost.cluster.processes import (
    accepts,
    alive,
    get_json,
    http_get,
    log_tail,
    ours,
    send_signal,
    spawn,
    stop_processes,
)

STATE_FILE = "cluster.json"
NODE_HOST = "127.0.0.1"  # nodes and NATS listen on loopback; HAProxy binds --host
NATS_CLUSTER = "roost-local"
DRAIN_GRACE = 10.0  # [drain] grace_period of the nodes
START_TIMEOUT = 30.0


class LauncherError(RuntimeError):
    """A cluster command cannot go on; the message says why in words."""


@dataclass
class NatsEntry:
    name: str
    client_port: int
    cluster_port: int
    http_port: int
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"nats://{NODE_HOST}:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{NODE_HOST}:{self.http_port}"


@dataclass
class NodeEntry:
    index: int
    mqtt_port: int
    http_port: int
    pid: int | None = None

    @property
    def node_id(self) -> str:
        return f"node-{self.index}"

    @property
    def http(self) -> str:
        return f"{NODE_HOST}:{self.http_port}"


@dataclass
class ProxyEntry:
    host: str
    port: int
    pid: int | None = None


@dataclass
class ClusterState:
    dir: str
    name: str
    host: str
    port: int
    state: str = "starting"  # starting, running, stopped
    nats: list[NatsEntry] = field(default_factory=list)
    nodes: list[NodeEntry] = field(default_factory=list)
    haproxy: ProxyEntry | None = None

    @property
    def path(self) -> Path:
        return Path(self.dir)

    def pids(self) -> list[int]:
        """Every process the cluster started and still records."""
        pids = [n.pid for n in self.nats] + [n.pid for n in self.nodes]
        if self.haproxy is not None:
            pids.append(self.haproxy.pid)
        return [pid for pid in pids if pid is not None]

    def save(self) -> None:
        tmp = self.path / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(self.path / STATE_FILE)

    @classmethod
    def load(cls, directory: Path) -> ClusterState:
        try:
            data = json.loads((directory / STATE_FILE).read_text())
            proxy = data.get("haproxy")
            state = cls(dir=data["dir"], name=data["name"], host=data["host"],
                        port=data["port"], state=data["state"],
                        nats=[NatsEntry(**n) for n in data["nats"]],
                        nodes=[NodeEntry(**n) for n in data["nodes"]],
                        haproxy=ProxyEntry(**proxy) if proxy else None)
        except FileNotFoundError:
            raise LauncherError(f"{directory} holds no cluster ({STATE_FILE} is missing): "
                                f"start one with roost cluster up --dir {directory}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LauncherError(f"cannot read {directory / STATE_FILE}: {exc}") from None
        # A pid that is gone, or now belongs to a process not started from this
        # directory (after a reboot, say), is forgotten: never signalled.
        entries: list[NatsEntry | NodeEntry | ProxyEntry] = [*state.nats, *state.nodes]
        if state.haproxy is not None:
            entries.append(state.haproxy)
        for entry in entries:
            if not ours(entry.pid, Path(state.dir)):
                entry.pid = None
        return state


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One cluster command at a time per directory."""
    with open(directory / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LauncherError(f"another roost cluster command is working on {directory}"
                                ) from None
        yield


# --- NATS ---------------------------------------------------------------------------

def _start_nats(state: ClusterState, count: int) -> None:
    ports = free_ports(3 * count, NODE_HOST)
    servers = [NatsEntry(f"nats-{i + 1}", *ports[3 * i:3 * i + 3]) for i in range(count)]
    binary = str(nats_server_path())
    for server in servers:
        d = state.path / server.name
        d.mkdir(exist_ok=True)
        routes = [s.cluster_port for s in servers if s is not server]
        (d / "nats.conf").write_text(server_config(
            name=server.name, host=NODE_HOST, client_port=server.client_port,
            http_port=server.http_port, log_file=state.path / "logs" / f"{server.name}.log",
            store_dir=d / "store", cluster=NATS_CLUSTER if count > 1 else None,
            cluster_port=server.cluster_port, routes=routes))
    state.nats = servers
    for server in servers:
        server.pid = spawn([binary, "-c", str(state.path / server.name / "nats.conf")],
                            state.path / "logs" / f"{server.name}.out", state.path)
    state.save()


def _nats_ready(state: ClusterState) -> bool:
    leaders = set()
    for server in state.nats:
        if not alive(server.pid):
            log = state.path / "logs" / f"{server.name}.log"
            raise LauncherError(f"nats-server {server.name} exited:\n{log_tail(log)}")
        try:
            health = get_json(server.monitor_url + "/healthz")
            jsz = get_json(server.monitor_url + "/jsz")
        except (OSError, ValueError):
            return False
        if health.get("status") != "ok" or jsz.get("disabled"):
            return False
        if len(state.nats) > 1:
            leader = meta_leader(server.name, jsz, len(state.nats))
            if leader is None:
                return False
            leaders.add(leader)
    return len(leaders) <= 1


def _wait(what: str, check: Any, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise LauncherError(f"{what} not ready after {timeout:g} s")
        time.sleep(0.1)


# --- Roost nodes ----------------------------------------------------------------------

def node_config(state: ClusterState, node: NodeEntry) -> str:
    """The ``roost.toml`` of ``node``: one MQTT listener behind HAProxy (PROXY protocol,
    trusting loopback only), its /readyz port, all NATS servers."""
    urls = ", ".join(json.dumps(s.url) for s in state.nats)
    monitors = ", ".join(json.dumps(s.monitor_url) for s in state.nats)
    data = state.path / node.node_id / "data"
    return (f"data_dir = {json.dumps(str(data))}\n\n"
            f"[[listeners]]\n"
            f'name = "haproxy"\n'
            f'bind = "{NODE_HOST}"\n'
            f"port = {node.mqtt_port}\n"
            f"proxy_protocol = true\n"
            f'proxy_trusted = ["127.0.0.1/32"]\n\n'
            f"[http]\n"
            f'bind = "{node.http}"\n\n'
            f"[drain]\n"
            f"grace_period = {DRAIN_GRACE}\n\n"
            f"[cluster]\n"
            f"urls = [{urls}]\n"
            f"name = {json.dumps(state.name)}\n"
            f'node_id = "{node.node_id}"\n'
            f"monitor_urls = [{monitors}]\n")


def _start_nodes(state: ClusterState, count: int) -> list[NodeEntry]:
    first = max((n.index for n in state.nodes), default=0) + 1
    ports = free_ports(2 * count, NODE_HOST)
    new = [NodeEntry(first + i, ports[2 * i], ports[2 * i + 1]) for i in range(count)]
    for node in new:
        d = state.path / node.node_id
        (d / "data").mkdir(parents=True, exist_ok=True)
        (d / "roost.toml").write_text(node_config(state, node))
        node.pid = spawn([sys.executable, "-m", "roost.cli", "serve", "--config",
                           str(d / "roost.toml")],
                          state.path / "logs" / f"{node.node_id}.log", d)
        state.nodes.append(node)
    state.save()

    def ready() -> bool:
        for node in new:
            if not alive(node.pid):
                log = state.path / "logs" / f"{node.node_id}.log"
                raise LauncherError(f"{node.node_id} exited:\n{log_tail(log)}")
        return all(node_ready(node) for node in new)

    _wait(", ".join(n.node_id for n in new), ready)
    return new


def node_ready(node: NodeEntry) -> bool:
    try:
        return http_get(f"http://{node.http}/readyz", 1.0)[0] == 200
    except OSError:
        return False


def node_connections(node: NodeEntry) -> int | None:
    """The node's open connections (``roost_connections`` in /metrics)."""
    try:
        status, body = http_get(f"http://{node.http}/metrics", 2.0)
    except OSError:
        return None
    if status != 200:
        return None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("roost_connections "):
            return int(float(line.split()[1]))
    return None


# --- HAProxy -------------------------------------------------------------------------

def haproxy_path() -> str:
    path = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if path is None:
        raise LauncherError("haproxy not found: install the Debian package haproxy "
                            "(apt-get install haproxy)")
    return path


def haproxy_config(state: ClusterState) -> str:
    """TCP on --host:--port, round robin over the nodes with PROXY v2; each node is
    health-checked with GET /readyz on its HTTP port, so a draining node (503) gets no
    new clients; a connection refused by a node is tried on another (redispatch)."""
    servers = "".join(
        f"    server {n.node_id} {NODE_HOST}:{n.mqtt_port} send-proxy-v2 "
        f"check port {n.http_port}\n" for n in state.nodes)
    return ("global\n"
            "    maxconn 4000\n"
            f"    stats socket {state.path / 'haproxy.sock'} mode 600 level admin\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 5s\n"
            "    timeout client 1h\n"
            "    timeout server 1h\n"
            "    retries 3\n"
            "    option redispatch\n"
            "frontend mqtt\n"
            f"    bind {state.host}:{state.port}\n"
            "    default_backend roost\n"
            "backend roost\n"
            "    balance roundrobin\n"
            "    option httpchk GET /readyz\n"
            "    default-server inter 500ms fall 2 rise 1\n"
            + servers)


def _write_haproxy_config(state: ClusterState) -> Path:
    cfg = state.path / "haproxy.cfg"
    tmp = state.path / "haproxy.cfg.new"
    tmp.write_text(haproxy_config(state))
    check = subprocess.run([haproxy_path(), "-c", "-q", "-f", str(tmp)],
                           capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise LauncherError(f"HAProxy refuses {tmp}:\n{check.stdout}{check.stderr}")
    tmp.replace(cfg)
    return cfg


def _haproxy_loads(state: ClusterState) -> tuple[int, int]:
    """(successful, failed) configuration loads that the master logged."""
    text = (state.path / "logs" / "haproxy.log").read_text(errors="replace") \
        if (state.path / "logs" / "haproxy.log").exists() else ""
    return text.count("Loading success."), text.count("Loading failure")


def _start_haproxy(state: ClusterState) -> None:
    cfg = _write_haproxy_config(state)
    state.haproxy = ProxyEntry(state.host, state.port)
    state.haproxy.pid = spawn([haproxy_path(), "-W", "-db", "-f", str(cfg)],
                               state.path / "logs" / "haproxy.log", state.path)
    state.save()

    def ready() -> bool:
        assert state.haproxy is not None
        if not alive(state.haproxy.pid):
            raise LauncherError("haproxy exited:\n"
                                + log_tail(state.path / "logs" / "haproxy.log"))
        return _haproxy_loads(state)[0] >= 1 and accepts(state.host, state.port)

    _wait("HAProxy", ready, 10.0)
    _wait_checked(state)


def _reload_haproxy(state: ClusterState) -> None:
    """Write the configuration for the current nodes and reload: SIGUSR2 to the
    master, which starts a new worker and soft-stops the old one (it keeps its
    established connections until they close)."""
    assert state.haproxy is not None
    before = _haproxy_loads(state)
    _write_haproxy_config(state)
    send_signal(state.haproxy.pid, signal.SIGUSR2)

    def reloaded() -> bool:
        assert state.haproxy is not None
        ok, failed = _haproxy_loads(state)
        if failed > before[1] or not alive(state.haproxy.pid):
            raise LauncherError("HAProxy reload failed:\n"
                                + log_tail(state.path / "logs" / "haproxy.log"))
        return ok > before[0]

    _wait("HAProxy reload", reloaded, 10.0)
    _wait_checked(state)


def _wait_checked(state: ClusterState) -> None:
    """Until HAProxy (its current worker) has checked every node and found it UP."""
    wanted = {n.node_id: "UP" for n in state.nodes}
    _wait("HAProxy health checks of " + ", ".join(wanted),
          lambda: haproxy_servers(state) == wanted, 10.0)


def haproxy_servers(state: ClusterState) -> dict[str, str]:
    """HAProxy's view of each node (``UP``, ``DOWN``, ``MAINT``…) from its stats
    socket, {} if it cannot be asked."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2.0)
            s.connect(str(state.path / "haproxy.sock"))
            s.sendall(b"show stat\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except OSError:
        return {}
    lines = b"".join(chunks).decode(errors="replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    header = lines[0][2:].split(",")
    result = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "roost" and row.get("svname") not in ("FRONTEND", "BACKEND"):
            result[row["svname"]] = row.get("status", "?")
    return result


# --- the commands ---------------------------------------------------------------------

def _running(directory: Path) -> ClusterState | None:
    """The cluster recorded in ``directory`` if any of its processes runs."""
    if not (directory / STATE_FILE).exists():
        return None
    state = ClusterState.load(directory)
    return state if any(alive(pid) for pid in state.pids()) else None


def up(directory: Path, *, nodes: int = 3, nats: int = 3, port: int = 1883,
       host: str = "127.0.0.1", name: str = "roost") -> ClusterState:
    """Start NATS, the nodes, then HAProxy; return once all nodes are ready and HAProxy
    accepts connections. On failure whatever was started is stopped again."""
    if nodes < 1 or nats < 1:
        raise LauncherError("a cluster needs at least one node and one NATS server")
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        running = _running(directory)
        if running is not None:
            raise LauncherError(
                f"{directory} already has a running cluster (pids "
                f"{', '.join(map(str, running.pids()))}): roost cluster down --dir "
                f"{directory} first")
        if accepts(host, port):
            raise LauncherError(f"{host}:{port} is taken: choose another --port")
        haproxy_path()
        nats_server_path()
        (directory / "logs").mkdir(exist_ok=True)
        state = ClusterState(str(directory), name, host, port)
        try:
            _start_nats(state, nats)
            _wait("NATS (JetStream meta leader)", lambda: _nats_ready(state))
            _start_nodes(state, nodes)
            _start_haproxy(state)
        except BaseException:
            _stop_all(state)
            raise
        state.state = "running"
        state.save()
        return state


def _stop_nodes(state: ClusterState, victims: list[NodeEntry]) -> list[str]:
    """SIGTERM (drain) ``victims`` and wait for them to exit; the ids of those that
    had to be killed."""
    pids = [n.pid for n in victims if n.pid is not None]
    killed = stop_processes(pids, DRAIN_GRACE + 5.0)
    names = [n.node_id for n in victims if n.pid in killed]
    for node in victims:
        node.pid = None
    return names


def _stop_all(state: ClusterState) -> None:
    _stop_nodes(state, state.nodes)
    if state.haproxy is not None and state.haproxy.pid is not None:
        stop_processes([state.haproxy.pid], 10.0)
        state.haproxy.pid = None
    stop_processes([s.pid for s in state.nats if s.pid is not None], 15.0)
    for server in state.nats:
        server.pid = None
    state.state = "stopped"
    state.save()


def down(directory: Path) -> ClusterState:
    """Drain the nodes (SIGTERM, waited for), then stop HAProxy, then NATS. Logs and
    data stay; ``cluster.json`` keeps the ports, without pids."""
    directory = directory.resolve()
    with _locked(directory):
        state = ClusterState.load(directory)
        _stop_all(state)
        return state


@dataclass
class Scaled:
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    # Stopped nodes that did not exit within their drain grace period (+5 s) and were
    # killed.
    killed: list[str] = field(default_factory=list)


def scale(directory: Path, count: int) -> Scaled:
    """Bring the cluster to ``count`` nodes. New nodes join (ready, then checked UP
    by HAProxy) before ``scale`` returns; removed nodes (the newest first) drain and
    exit before HAProxy forgets them."""
    if count < 1:
        raise LauncherError("a cluster needs at least one node (roost cluster down stops "
                            "it)")
    directory = directory.resolve()
    with _locked(directory):
        state = _running(directory)
        if state is None or state.state != "running":
            raise LauncherError(f"no running cluster in {directory}")
        if any(not alive(s.pid) for s in state.nats):
            raise LauncherError("a NATS server of the cluster is not running: "
                                "see roost cluster status")
        current = len(state.nodes)
        result = Scaled()
        if count > current:
            result.started = [n.node_id for n in _start_nodes(state, count - current)]
            _reload_haproxy(state)
        elif count < current:
            victims = sorted(state.nodes, key=lambda n: n.index)[count:]
            result.killed = _stop_nodes(state, victims)
            result.stopped = [n.node_id for n in victims]
            state.nodes = [n for n in state.nodes if n not in victims]
            state.save()
            _reload_haproxy(state)
        state.save()
        return result


@dataclass
class StatusRow:
    kind: str
    name: str
    pid: int | None
    alive: bool
    health: str
    detail: str = ""


def status(directory: Path) -> list[StatusRow]:
    """One row per NATS server, node and HAProxy."""
    state = ClusterState.load(directory.resolve())
    rows = []
    for server in state.nats:
        ok = alive(server.pid)
        health, detail = "-", f"client {server.client_port}, monitor {server.http_port}"
        if ok:
            try:
                health = str(get_json(server.monitor_url + "/healthz").get("status", "?"))
                jsz = get_json(server.monitor_url + "/jsz")
                leader = (jsz.get("meta_cluster") or {}).get("leader")
                if leader:
                    detail += f", meta leader {leader}"
            except (OSError, ValueError):
                health = "unreachable"
        rows.append(StatusRow("nats", server.name, server.pid, ok, health, detail))
    views = haproxy_servers(state) if state.haproxy is not None else {}
    for node in state.nodes:
        ok = alive(node.pid)
        health, detail = "-", f"mqtt {node.mqtt_port}, http {node.http_port}"
        if ok:
            health = "ready" if node_ready(node) else "not ready"
            connections = node_connections(node)
            detail += f", connections {'?' if connections is None else connections}"
        if node.node_id in views:
            detail += f", haproxy {views[node.node_id]}"
        rows.append(StatusRow("node", node.node_id, node.pid, ok, health, detail))
    if state.haproxy is not None:
        ok = alive(state.haproxy.pid)
        health = "accepting" if ok and accepts(state.host, state.port) else "-"
        rows.append(StatusRow("haproxy", "haproxy", state.haproxy.pid, ok, health,
                              f"{state.host}:{state.port}"))
    return rows
