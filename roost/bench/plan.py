"""Who connects where: the clients of a scenario, split over workers and source addresses.

One process can hold only as many sockets as its open-file limit allows, and one source
address only as many connections to the broker as there are ephemeral ports, so a large
run is spread over worker processes (``conns_per_worker`` each) and, when the broker is
on loopback, over the source addresses 127.0.0.1, 127.0.0.2, … (``conns_per_source``
each). Both are chosen from the client count unless the options name them.
"""

from __future__ import annotations

import ipaddress
import math
import resource
import socket
from dataclasses import dataclass

from roost.bench.options import BenchError, BenchOptions

PUB, SUB, CONN = "pub", "sub", "conn"
# files a worker holds besides its sockets: the interpreter, its pipe, the event loop
FILES_PER_WORKER = 64


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One simulated client. ``topic`` is the topic a publisher publishes to or the filter
    a subscriber subscribes to; ``expects`` the publisher numbers whose messages a
    subscriber should receive (None when unknown, as for the ``sub`` scenario)."""

    number: int
    role: str
    client_id: str
    topic: str
    source: str | None = None
    expects: range | None = None


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    index: int
    options: BenchOptions
    target: str
    clients: tuple[ClientSpec, ...]
    connect_rate: float


def topic_for(template: str, number: int | str) -> str:
    return template.replace("%i", str(number))


def scenario_clients(o: BenchOptions) -> list[ClientSpec]:
    """The clients of the scenario, in an order where a pair's two ends sit together."""
    n, t = o.clients, o.topic

    def pub(i: int) -> ClientSpec:
        return ClientSpec(i, PUB, f"{o.prefix}-pub-{i}", topic_for(t, i))

    def sub(i: int, topic: str, expects: range | None) -> ClientSpec:
        return ClientSpec(i, SUB, f"{o.prefix}-sub-{i}", topic, expects=expects)

    if o.scenario == "conn":
        return [ClientSpec(i, CONN, f"{o.prefix}-conn-{i}", "") for i in range(1, n + 1)]
    if o.scenario == "pub":
        return [pub(i) for i in range(1, n + 1)]
    if o.scenario == "sub":
        return [sub(i, topic_for(t, i), None) for i in range(1, n + 1)]
    if o.scenario == "pairs":
        out = []
        for i in range(1, n + 1):
            out += [sub(i, topic_for(t, i), range(i, i + 1)), pub(i)]
        return out
    if o.scenario == "fanout":
        return [*(sub(i, topic_for(t, 1), range(1, 2)) for i in range(1, n + 1)), pub(1)]
    if o.scenario == "fanin":
        return [sub(1, topic_for(t, "+"), range(1, n + 1)), *(pub(i) for i in range(1, n + 1))]
    raise BenchError(f"unknown scenario {o.scenario!r}")


def resolve(host: str, port: int) -> str:
    """The broker's address, resolved once here rather than once per connection."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BenchError(f"--host: cannot resolve {host!r}: {exc}") from exc
    return str(infos[0][4][0])


def source_addresses(o: BenchOptions, target: str, total: int) -> list[str | None]:
    """The source addresses clients are spread over; [None] lets the kernel choose."""
    if o.ifaddr:
        return list(o.ifaddr)
    addr = ipaddress.ip_address(target)
    if addr.version != 4 or not addr.is_loopback:
        return [None]
    count = math.ceil(total / o.conns_per_source)
    if count > 254:
        raise BenchError(f"{total} clients need {count} source addresses of 127.0.0.x at "
                         f"--conns-per-source {o.conns_per_source}; at most 254 exist")
    if count == 1:
        return [None]
    return [f"127.0.0.{i}" for i in range(1, count + 1)]


def build_plan(o: BenchOptions) -> list[WorkerPlan]:
    """Split the scenario's clients into contiguous slices, one per worker."""
    target = resolve(o.host, o.port)
    clients = scenario_clients(o)
    total = len(clients)
    sources = source_addresses(o, target, total)
    workers = min(o.workers or math.ceil(total / o.conns_per_worker), total)
    placed = [ClientSpec(c.number, c.role, c.client_id, c.topic, sources[k % len(sources)],
                         c.expects) for k, c in enumerate(clients)]
    biggest = math.ceil(total / workers)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and biggest + FILES_PER_WORKER > hard:
        raise BenchError(f"{biggest} connections per worker exceed the open-file limit of "
                         f"{hard}; lower --conns-per-worker or raise the limit")
    plans = []
    start = 0
    for w in range(workers):
        size = total // workers + (1 if w < total % workers else 0)
        chunk = tuple(placed[start:start + size])
        start += size
        rate = o.rate * len(chunk) / total
        plans.append(WorkerPlan(w, o, target, chunk, rate))
    return plans


def role_counts(plans: list[WorkerPlan]) -> dict[str, int]:
    """How many publishers and subscribers ``plans`` hold."""
    counts = {PUB: 0, SUB: 0}
    for plan in plans:
        for c in plan.clients:
            if c.role in counts:
                counts[c.role] += 1
    return counts
