"""A node's life with NATS: it waits for NATS before taking clients, /readyz follows the
connection, it reconnects with back-off, and the embedded broker never loads NATS."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from roost.mqtt import ReasonCode
from tests.broker import BrokerProcess, RawClient
from tests.cluster.nats_cluster import nats_cluster

ROOT = Path(__file__).resolve().parent.parent.parent


def readyz(port: int) -> int | None:
    """/readyz's status; None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_for(check: object, expected: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := check()) != expected:  # type: ignore[operator]
        assert time.monotonic() < deadline, f"still {got!r}, expected {expected!r}"
        time.sleep(0.05)


def test_readiness_follows_the_nats_connection() -> None:
    with nats_cluster(1, jetstream=False) as lone:
        server = lone.servers[0]
        server.stop()
        node = BrokerProcess(f'[cluster]\nurls = ["{server.url}"]\nnode_id = "lonely"\n',
                             http_port=0)
        node.start(wait=False)
        try:
            wait_for(lambda: readyz(node.http_port or 0), 503)  # HTTP up, NATS not yet
            node.wait_log(f"connecting to NATS at {server.url}")
            node.wait_log(f"cannot reach NATS at {server.url} (")
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", node.port)) != 0  # no MQTT before NATS
            server.start()
            node.start_wait()
            assert readyz(node.http_port or 0) == 200
            log = node.log()
            # Preflight problems are logged; for now (no JetStream used yet) the node runs.
            assert "cluster preflight: JetStream does not answer" in log
            assert "cluster preflight: no NATS monitoring URL given" in log
            client = RawClient(node.port)
            assert client.connect("during").reason_code == ReasonCode.SUCCESS

            mark = len(node.log())
            server.stop()
            wait_for(lambda: readyz(node.http_port or 0), 503)
            node.wait_log("NATS connection 'main' lost", start=mark)
            node.wait_log(f"reconnecting to {server.url} in", start=mark)
            server.start()
            wait_for(lambda: readyz(node.http_port or 0), 200)
            node.wait_log(f"NATS connection 'main' back, to {server.url}", start=mark)
            client.close()
        finally:
            node.stop()
        assert node.returncode == 0


def test_the_embedded_broker_never_imports_nats(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import asyncio, sys
        import roost.cli
        from roost.app import Broker
        from roost.config import Config, HttpConfig, ListenerConfig, StoreConfig

        async def main():
            config = Config(data_dir="data", listeners=(ListenerConfig(port=0),),
                            http=HttpConfig(enabled=False), store=StoreConfig(type="memory"))
            async with Broker(config) as broker:
                assert broker.ready

        asyncio.run(main())
        print(sorted(m for m in sys.modules
                     if m.split(".")[0] == "nats" or m.startswith("roost.cluster")))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30, env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
