"""nats-server configuration and readiness, shared by the test fixtures
(``tests/cluster/nats_cluster.py``) and ``roost cluster up`` (``roost.cluster.launcher``).

Nothing here imports the NATS client: only text and the monitoring JSON."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (all held until all are chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]


def server_config(*, name: str, host: str, client_port: int, http_port: int,
                  log_file: Path, store_dir: Path | None, cluster: str | None = None,
                  cluster_port: int = 0, routes: list[int] | None = None,
                  sync_always: bool = True) -> str:
    """The text of one server's ``nats.conf``: client, monitoring and (if ``cluster``)
    route listeners on ``host``; JetStream with its store in ``store_dir`` (none when
    ``store_dir`` is None) and ``sync_interval: always`` unless ``sync_always`` is
    false; ``routes`` are the other servers' route ports."""
    text = (f'server_name: "{name}"\n'
            f'listen: "{host}:{client_port}"\n'
            f'http: "{host}:{http_port}"\n'
            f'log_file: "{log_file}"\n')
    if store_dir is not None:
        sync = "\n    sync_interval: always" if sync_always else ""
        text += f'jetstream {{\n    store_dir: "{store_dir}"{sync}\n}}\n'
    if cluster is not None:
        route_urls = ", ".join(f'"nats-route://{host}:{port}"' for port in routes or [])
        text += (f'cluster {{\n    name: "{cluster}"\n'
                 f'    listen: "{host}:{cluster_port}"\n'
                 f'    routes: [{route_urls}]\n}}\n')
    return text


def meta_leader(server_name: str, jsz: dict[str, Any], cluster_size: int) -> str | None:
    """The JetStream meta leader that a server's ``/jsz`` names, if the meta cluster it
    sees has ``cluster_size`` members and, seen from the leader itself, every follower
    is current (only the leader's view of its followers is kept up to date); else
    None."""
    meta = jsz.get("meta_cluster") or {}
    leader = meta.get("leader")
    if not leader or meta.get("cluster_size") != cluster_size:
        return None
    if leader == server_name and not all(
            peer.get("current") for peer in meta.get("replicas") or []):
        return None
    return str(leader)
