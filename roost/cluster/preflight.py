"""Checks at start that NATS can keep the cluster's promises (cluster.md §1, §2).

A Roost node acknowledges a QoS 1/2 PUBLISH once JetStream has stored it on a majority of
three servers, so before serving it verifies, and refuses to start otherwise:

- JetStream answers on the node's connection (``$JS.API.INFO``);
- every server runs nats-server 2.15 or later (``/varz`` ``version``);
- every server syncs each write to disk (``sync_interval: always``). Only the monitoring
  endpoint says so: ``/jsz`` ``config.sync_always``, which nats-server omits when false
  (``JetStreamConfig.SyncAlways``, json ``sync_always,omitempty``, server/jetstream.go).
  With the default 2-minute sync an acknowledged message can be lost when the servers
  holding it lose power together;
- JetStream is clustered with a meta leader and at least ``replicas`` servers
  (``/jsz`` ``meta_cluster.cluster_size``, ``leader``), so R3 streams can be placed;
- every server of that cluster was checked (``meta_cluster`` names the peers);
- payloads as large as Roost's largest packet are accepted (``max_payload``, 1 MiB by
  default).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client

MIN_VERSION = (2, 15)


@dataclass(slots=True)
class _Server:
    """What one monitoring endpoint told us."""

    url: str
    name: str = ""
    version: str = ""
    jsz: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"nats-server {self.name} ({self.url})" if self.name else self.url


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = json.loads(response.read())
    if not isinstance(data, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return data


def _read(url: str, timeout: float) -> _Server:
    base = url.rstrip("/")
    varz = _get_json(base + "/varz", timeout)
    jsz = _get_json(base + "/jsz", timeout)
    return _Server(base, str(varz.get("server_name", "")), str(varz.get("version", "")), jsz)


def _version(text: str) -> tuple[int, ...]:
    """``2.15.1`` or ``2.15.0-dev`` → (2, 15); () if unreadable."""
    try:
        return tuple(int(part) for part in text.split("-")[0].split(".")[:2])
    except ValueError:
        return ()


def _server_problems(server: _Server, replicas: int) -> list[str]:
    problems = []
    if _version(server.version) < MIN_VERSION:
        problems.append(f"{server.label} is version {server.version or 'unknown'}; Roost "
                        f"needs nats-server {'.'.join(map(str, MIN_VERSION))} or later")
    jsz = server.jsz
    if jsz.get("disabled") or not jsz.get("config"):
        problems.append(f"JetStream is not enabled on {server.label} (/jsz)")
        return problems
    if jsz["config"].get("sync_always") is not True:
        problems.append(
            f"JetStream on {server.label} does not run with sync_interval: always "
            "(/jsz config.sync_always is false): acknowledged messages could be lost on "
            "power failure")
    meta = jsz.get("meta_cluster")
    if not meta:
        problems.append(f"JetStream on {server.label} is not clustered: R{replicas} needs a "
                        f"cluster of at least {replicas} servers")
        return problems
    size = int(meta.get("cluster_size", 0))
    if size < replicas:
        problems.append(f"JetStream cluster {meta.get('name', '')!r} has {size} server(s) "
                        f"(seen by {server.label}): R{replicas} needs at least {replicas}")
    if not meta.get("leader"):
        problems.append(f"JetStream cluster {meta.get('name', '')!r} has no meta leader "
                        f"(seen by {server.label}): no quorum")
    return problems


def _peers(server: _Server) -> set[str]:
    """The server names of the JetStream cluster, as ``server`` knows them."""
    meta = server.jsz.get("meta_cluster") or {}
    names = {str(peer.get("name", "")) for peer in meta.get("replicas") or []}
    names.add(str(meta.get("leader", "")))
    names.add(server.name)
    names.discard("")
    return names


async def _jetstream_problem(nc: Client, timeout: float) -> str | None:
    url = nc.connected_url.geturl() if nc.connected_url else "NATS"
    try:
        await nc.jsm(timeout=timeout).account_info()
    except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):
        return (f"JetStream does not answer through {url} (no responders): it is not "
                "enabled on that server or for this account")
    except (TimeoutError, nats.js.errors.APIError, nats.errors.Error) as exc:
        return f"JetStream does not answer through {url}: {exc}"
    return None


async def check_jetstream(nc: Client, monitor_urls: Sequence[str], *, replicas: int = 3,
                          max_payload: int | None = None,
                          timeout: float = 5.0) -> list[str]:
    """Problems that keep NATS from holding Roost's promises, as sentences for the
    operator; empty when all is well. ``monitor_urls`` are the servers' HTTP monitoring
    endpoints (``http://host:8222``), one per server of the cluster; ``max_payload`` is
    the largest payload Roost will publish (its packet size limit)."""
    problems = []
    jetstream = await _jetstream_problem(nc, timeout)
    if jetstream:
        problems.append(jetstream)
    if max_payload is not None and nc.max_payload < max_payload:
        problems.append(f"NATS accepts payloads up to {nc.max_payload} bytes, Roost's packet "
                        f"limit is {max_payload}: raise max_payload in the NATS "
                        "configuration or lower Roost's maximum packet size")
    if not monitor_urls:
        problems.append("no NATS monitoring URL given: sync_interval and the cluster size "
                        "cannot be checked")
        return problems
    results = await asyncio.gather(*(asyncio.to_thread(_read, url, timeout)
                                     for url in monitor_urls), return_exceptions=True)
    servers = []
    for url, result in zip(monitor_urls, results, strict=True):
        if isinstance(result, _Server):
            servers.append(result)
            problems.extend(_server_problems(result, replicas))
        elif isinstance(result, (OSError, ValueError, urllib.error.URLError)):
            problems.append(f"cannot read the NATS monitoring endpoint {url}: {result}")
        else:
            raise result
    known: set[str] = set().union(*map(_peers, servers))
    unchecked = known - {server.name for server in servers}
    if unchecked:
        problems.append(f"nats-server(s) {', '.join(sorted(unchecked))} are in the JetStream "
                        "cluster but no monitoring URL given reaches them: their sync "
                        "setting is unchecked")
    return problems
