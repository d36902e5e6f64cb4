"""``roost cluster up|status|scale|down`` with real processes: 3 NATS servers, Roost
nodes, Debian's HAProxy, MQTT clients through HAProxy's port. Whatever a test leaves
running is drained by ``down`` and then killed (every process whose command line names
the test's directory)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.cli import main
from roost.cluster import launcher, processes
from roost.cluster.launcher import ClusterState, LauncherError
from roost.mqtt import ReasonCode
from roost.mqtt.packets import Disconnect, Pingreq, Pingresp, Puback, Publish
from tests.broker import ROOT, Closed, RawClient, free_port
from tests.cluster.nodes import receive, routed


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "cluster"
    yield directory
    with contextlib.suppress(Exception):
        if (directory / launcher.STATE_FILE).exists():
            launcher.down(directory)
    leftovers = processes.processes_under(directory)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes left running: {leftovers}"


def clients_on(state: ClusterState) -> dict[str, str]:
    """client id → node id, from each node's JSON API."""
    found = {}
    for node in state.nodes:
        with urllib.request.urlopen(f"http://{node.http}/api/v1/clients", timeout=5) as r:
            for client in json.loads(r.read()):
                found[client["client_id"]] = node.node_id
    return found


def connected(port: int, client_id: str, level: int = 5) -> RawClient:
    client = RawClient(port, level=level)
    assert client.connect(client_id).reason_code == 0
    return client


def spread(port: int, state: ClusterState, prefix: str) -> dict[str, RawClient]:
    """node id → a client connected through HAProxy that landed on it, one per node
    (round robin, but HAProxy's position in it is not known in advance)."""
    on: dict[str, RawClient] = {}
    extra = []
    for i in range(4 * len(state.nodes)):
        client = connected(port, f"{prefix}{i}")
        node = clients_on(state)[f"{prefix}{i}"]
        if node in on:
            extra.append(client)
        else:
            on[node] = client
        if len(on) == len(state.nodes):
            break
    for client in extra:
        client.disconnect()
    assert len(on) == len(state.nodes), on
    return on


def test_haproxy_config_checks_readyz_and_sends_proxy_v2(tmp_path: Path) -> None:
    state = ClusterState(str(tmp_path), "roost", "127.0.0.1", 1883,
                         nodes=[launcher.NodeEntry(1, 4001, 5001),
                                launcher.NodeEntry(2, 4002, 5002)])
    cfg = launcher.haproxy_config(state)
    assert "bind 127.0.0.1:1883" in cfg
    assert "option httpchk GET /readyz" in cfg
    assert "server node-1 127.0.0.1:4001 send-proxy-v2 check port 5001" in cfg
    assert "server node-2 127.0.0.1:4002 send-proxy-v2 check port 5002" in cfg
    toml = launcher.node_config(state, state.nodes[0])
    assert "proxy_protocol = true" in toml and 'proxy_trusted = ["127.0.0.1/32"]' in toml
    assert 'node_id = "node-1"' in toml and 'bind = "127.0.0.1:5001"' in toml


def test_commands_without_a_cluster_say_so(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "status", "--dir", str(tmp_path)]) == 1
    assert "holds no cluster" in capsys.readouterr().err
    with pytest.raises(LauncherError, match="at least one node"):
        launcher.scale(tmp_path, 0)


def test_up_route_status_scale_down(cluster_dir: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    started = time.monotonic()
    state = launcher.up(cluster_dir, nodes=2, nats=3, port=port)
    up_time = time.monotonic() - started
    assert state.state == "running" and len(state.nodes) == 2 and len(state.nats) == 3
    first_pids = set(state.pids())
    assert all(processes.alive(pid) for pid in first_pids)
    # Every NATS server syncs always, as written.
    for i in (1, 2, 3):
        assert "sync_interval: always" in (cluster_dir / f"nats-{i}" / "nats.conf").read_text()

    # A second `up` on the same directory is refused.
    assert main(["cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port())]) == 1
    assert "already has a running cluster" in capsys.readouterr().err

    # Publisher and subscriber through HAProxy, round robin: on the two nodes.
    on = spread(port, state, "c")
    sub, pub = on["node-1"], on["node-2"]
    assert sub.subscribe("launcher/t", qos=1).reason_codes == [1]
    routed(pub, "launcher/t", sub)
    for i in range(5):
        pub.publish("launcher/t", f"m{i}".encode(), qos=1, packet_id=i + 1)
    assert [p.payload for p in receive(sub, 5)] == [f"m{i}".encode() for i in range(5)]

    # Status: everything alive and ready, connections counted.
    assert main(["cluster", "status", "--dir", str(cluster_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("ready") == 2 and out.count(" ok ") == 3 and "accepting" in out
    rows = launcher.status(cluster_dir)
    assert sum(int(r.detail.split("connections ")[1].split(",")[0])
               for r in rows if r.kind == "node") >= 2

    # Scale up: node-3 joins HAProxy; established connections survive the reload.
    assert launcher.scale(cluster_dir, 3) == launcher.Scaled(["node-3"], [], [])
    state = ClusterState.load(cluster_dir)
    assert launcher.haproxy_servers(state) == {"node-1": "UP", "node-2": "UP",
                                               "node-3": "UP"}
    on3 = spread(port, state, "d")
    pub.publish("launcher/t", b"after reload", qos=1, packet_id=10)
    assert [p.payload for p in receive(sub, 1)] == [b"after reload"]

    # Scale down to node-1: clients on node-2 and node-3 are drained (DISCONNECT 0x8B)
    # and come back through HAProxy; node-1's clients stay connected.
    removed = [n for n in state.nodes if n.node_id != "node-1"]
    started = time.monotonic()
    assert launcher.scale(cluster_dir, 1) == launcher.Scaled([], ["node-2", "node-3"], [])
    scale_down_time = time.monotonic() - started
    assert not any(processes.alive(n.pid) for n in removed)
    state = ClusterState.load(cluster_dir)
    assert launcher.haproxy_servers(state) == {"node-1": "UP"}
    for node_id, client in on3.items():
        if node_id == "node-1":
            continue
        try:
            got = client.expect_closed()
        except Closed:
            got = []
        disconnects = [p for p in got if isinstance(p, Disconnect)]
        assert [d.reason_code for d in disconnects] == [ReasonCode.SERVER_SHUTTING_DOWN]
        again = connected(port, f"again-{node_id}")
        assert clients_on(state)[f"again-{node_id}"] == "node-1"
        again.disconnect()
    with contextlib.suppress(Closed):
        pub.expect_closed()
    # The subscriber on node-1 is still connected, through the old HAProxy worker.
    for client in (sub, on3["node-1"]):
        client.send(Pingreq())
        while not isinstance(packet := client.recv(5.0), Pingresp):
            assert isinstance(packet, (Publish, Puback)), packet  # nothing else
        client.disconnect()

    # Down: nothing left running; ports and logs kept.
    all_pids = first_pids | set(state.pids()) | {n.pid for n in removed if n.pid}
    state = launcher.down(cluster_dir)
    assert state.state == "stopped" and state.pids() == []
    assert not any(processes.alive(pid) for pid in all_pids)
    assert processes.processes_under(cluster_dir) == []
    assert (cluster_dir / "logs" / "node-1.log").stat().st_size > 0
    print(f"up {up_time:.1f} s, scale 3→1 {scale_down_time:.1f} s")


def test_a_recorded_pid_of_another_process_is_never_signalled(tmp_path: Path) -> None:
    """After a reboot cluster.json may name pids that now belong to others."""
    state = ClusterState(str(tmp_path), "roost", "127.0.0.1", 1883, state="running",
                         nodes=[launcher.NodeEntry(1, 4001, 5001, pid=os.getpid())])
    state.save()
    loaded = ClusterState.load(tmp_path)
    assert loaded.pids() == []
    assert launcher.down(tmp_path).state == "stopped"  # and this test still runs


def test_up_refuses_a_taken_port(cluster_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(LauncherError, match="is taken"):
            launcher.up(cluster_dir, nodes=1, nats=1, port=taken.getsockname()[1])


def test_scale_down_client_reconnects_and_receives(cluster_dir: Path) -> None:
    """A publisher drained off a removed node reconnects through HAProxy and its
    messages reach a subscriber on the surviving node."""
    port = free_port()
    launcher.up(cluster_dir, nodes=2, nats=3, port=port)
    state = ClusterState.load(cluster_dir)
    on = spread(port, state, "c")
    keeper, mover = on["node-1"], on["node-2"]
    assert keeper.subscribe("drain/t", qos=1).reason_codes == [1]
    launcher.scale(cluster_dir, 1)
    with contextlib.suppress(Closed):
        mover.expect_closed()
    mover = connected(port, "mover")
    mover.publish("drain/t", b"after", qos=1, packet_id=1)
    got = receive(keeper, 1)
    assert isinstance(got[0], Publish) and got[0].payload == b"after"
    launcher.down(cluster_dir)


def test_the_commands_work_from_separate_processes(cluster_dir: Path) -> None:
    """As from a shell: `up` returns while the cluster keeps running, and `status` and
    `down` find it through cluster.json."""
    def roost(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "roost.cli", "cluster", *args,
                               "--dir", str(cluster_dir)], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)

    port = free_port()
    up = roost("up", "--nodes", "1", "--nats", "1", "--port", str(port))
    assert up.returncode == 0, up.stderr
    assert f"MQTT on 127.0.0.1:{port}" in up.stdout
    status = roost("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "node-1" in status.stdout and "ready" in status.stdout
    client = connected(port, "from-shell", level=4)
    client.disconnect()
    pids = ClusterState.load(cluster_dir).pids()
    assert len(pids) == 3
    down = roost("down")
    assert down.returncode == 0, down.stderr
    assert not any(processes.alive(pid) for pid in pids)
    assert roost("status").returncode == 1
